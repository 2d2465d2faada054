package enginetest

import (
	"errors"
	"fmt"
	"time"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
)

// Model is a reference model of the credential machine: a second, naive
// implementation written from the documented behaviour (the state
// descriptions, the comments on the rules and the statechart's prose) as a
// plain switch over events and states. It does not read the transitions
// table, so when the table and the prose part ways, the model and the engine
// disagree and a test says where.
//
// A Model is a value: copying it (m2 := *m) gives an independent model, so a
// test can try an event on a copy before applying it for real.
//
// The exported fields are the model's extended state; tests compare them
// with the engine's Snapshot and Extended.
type Model struct {
	Policy Policy

	State      states.State
	Record     states.Record
	Version    states.Version
	Generation uint64
	FromEnv    bool
	Failure    states.Reason
	// HasError says whether a last error is recorded: the model tracks when
	// one is, not its wording.
	HasError bool
	Attempts int
	Unsaved  bool
	// Spent is the refresh token this process redeemed last and saw
	// replaced: a store that still holds it holds nothing newer than
	// memory.
	Spent states.Secret

	// RetryAt is when a backoff ends. When the jitter of a failure was not
	// known (an engine draws it itself), RetryLatest is the latest it can
	// be and RetryAt the earliest; Pin narrows it to what was observed.
	RetryAt     time.Time
	RetryLatest time.Time

	// QuietUntil and QuietAbove describe the last recovery a 401 started:
	// until QuietUntil, a 401 for tokens of a generation above QuietAbove
	// (tokens that came after the refused ones) starts no new recovery.
	// Zero when no recovery ran since the last login.
	QuietUntil time.Time
	QuietAbove uint64
}

// Errors Step returns. They wrap the engine's sentinels, so that a test can
// compare the model's refusals with the machine's by class.
var (
	// ErrUndecided: the model cannot tell whether a backoff has ended,
	// because the jitter of the failure that started it is unknown; call
	// Pin first.
	ErrUndecided = errors.New("enginetest: backoff end unknown; pin it first")
)

// Step is what the model predicts for one event: the transition and its
// commands, with the arguments the engine must give them.
type Step struct {
	Event      states.EventKind
	From, To   states.State
	Commands   []effects.Command
	Generation uint64
}

// NewModel returns a model in logged_out with an empty extended state, like
// a new machine.
func NewModel(p Policy) *Model { return &Model{Policy: p, State: states.LoggedOut} }

// Pin fixes a backoff end whose jitter was unknown to the value an engine
// chose, after checking that it is one the policy allows. It reports
// whether at was within the allowed window.
func (m *Model) Pin(at time.Time) bool {
	if m.RetryLatest.IsZero() {
		return at.Equal(m.RetryAt)
	}
	ok := !at.Before(m.RetryAt) && !at.After(m.RetryLatest)
	m.RetryAt, m.RetryLatest = at, time.Time{}
	return ok
}

// resting reports whether s waits for input with nothing in flight.
func resting(s states.State) bool { return s.Valid() && !s.Waiting() }

// Step applies one event to the model and returns the predicted transition,
// or an error wrapping engine.ErrNotPermitted, engine.ErrStaleOutcome or
// engine.ErrInvalidEvent when the engine must refuse it (the model is then
// unchanged), or ErrUndecided.
func (m *Model) Step(ev states.Event) (Step, error) {
	if err := checkEvent(ev); err != nil {
		return Step{}, err
	}
	if gen, ok := outcomeOf(ev); ok && gen != m.Generation {
		return Step{}, fmt.Errorf("%w: %s for %d, current %d", engine.ErrStaleOutcome, ev.Kind(), gen, m.Generation)
	}

	next := *m
	from := m.State
	to, cmds, err := next.decide(ev)
	if err != nil {
		return Step{}, err
	}
	next.State = to
	*m = next
	return Step{Event: ev.Kind(), From: from, To: to, Commands: cmds, Generation: m.Generation}, nil
}

// notPermitted is the refusal for an event the state has no answer to.
func (m *Model) notPermitted(ev states.Event) error {
	return fmt.Errorf("%w: %s in %s", engine.ErrNotPermitted, ev.Kind(), m.State)
}

// decide changes m for ev and returns the next state and the commands.
func (m *Model) decide(ev states.Event) (states.State, []effects.Command, error) {
	now := ev.Time()
	s := m.State
	switch e := ev.(type) {

	case states.Loaded:
		// The store was read. Only a resting machine reads it.
		if !resting(s) {
			return 0, nil, m.notPermitted(ev)
		}
		switch {
		case e.Err != nil:
			// Something unreadable is stored: a failure for good, never a
			// silent logout.
			m.fail(states.ReasonUnreadableStore)
			m.Version = e.Version
			return states.FailedPermanent, nil, nil
		case (s == states.Fresh || s == states.Stale) && m.Unsaved && !e.FromEnv &&
			(e.Version == m.Version || m.holdsSpent(e.Record)):
			// Our tokens could not be saved, and the store holds nothing
			// newer: nobody wrote it since, or it still holds the refresh
			// token we spent to get ours. Keep ours and save them again.
			m.Version = e.Version
			return s, m.cmds(m.persist(m.Version)), nil
		case s == states.FailedPermanent && !e.Record.IsZero() &&
			(e.Record.SameCredential(m.Record) || m.holdsSpent(e.Record)):
			// The credential that failed is still the one stored, or the
			// store holds the token spent to get it: nothing new.
			return s, nil, nil
		case e.Record.IsZero():
			m.adoptLoaded(e)
			return states.LoggedOut, nil, nil
		case e.FromEnv && m.Policy.Violates(e.Record):
			// A restricted key from the environment: fail, but leave the
			// stores alone, since the key is not in them.
			m.fail(states.ReasonRestricted)
			return states.FailedPermanent, nil, nil
		case m.Policy.Violates(e.Record):
			m.fail(states.ReasonRestricted)
			return states.FailedPermanent, m.cmds(effects.DeleteStores{Generation: m.Generation}), nil
		case e.Record.Mode == states.ModeAPIKey:
			m.adoptLoaded(e)
			return states.APIKey, nil, nil
		case m.Policy.Stale(e.Record, now):
			m.adoptLoaded(e)
			return states.Stale, nil, nil
		default:
			m.adoptLoaded(e)
			return states.Fresh, m.cmds(m.wake()...), nil
		}

	case states.LoginRequested:
		// A person signed in: always a new session, saved whatever the
		// store holds, unless a restriction forbids the credential.
		if !resting(s) {
			return 0, nil, m.notPermitted(ev)
		}
		if m.Policy.Violates(e.Record) {
			m.fail(states.ReasonRestricted)
			return states.FailedPermanent, nil, nil
		}
		m.Record = states.Record{} // so that adopt always starts a new generation
		m.adopt(e.Record, m.Version, false)
		m.QuietUntil, m.QuietAbove = time.Time{}, 0
		save := m.persist(states.AnyVersion)
		switch {
		case e.Record.Mode == states.ModeAPIKey:
			return states.APIKey, m.cmds(save), nil
		case m.Policy.Stale(e.Record, now):
			return states.Stale, m.cmds(save), nil
		default:
			return states.Fresh, m.cmds(append([]effects.Command{save}, m.wake()...)...), nil
		}

	case states.LogoutRequested:
		if !resting(s) {
			return 0, nil, m.notPermitted(ev)
		}
		*m = Model{Policy: m.Policy, Generation: m.Generation + 1, Version: m.Version}
		return states.LoggedOut, m.cmds(effects.DeleteStores{Generation: m.Generation}), nil

	case states.StoresCleared:
		if s != states.LoggedOut && s != states.FailedPermanent {
			return 0, nil, m.notPermitted(ev)
		}
		m.Version = states.NoVersion
		if e.Err != nil {
			m.HasError = true
		}
		return s, nil, nil

	case states.TokenRequested:
		switch s {
		case states.LoggedOut, states.APIKey, states.FailedPermanent,
			states.Refreshing, states.ExternalRefresh:
			// Nothing to start: serve, fail, or wait for the flight.
			return s, nil, nil
		case states.Fresh:
			switch {
			case m.hostManaged() && Expired(m.Record, now):
				return m.askHost()
			case m.Record.Mode == states.ModeManaged && m.Policy.Stale(m.Record, now):
				return m.startRefresh()
			case m.Policy.Stale(m.Record, now):
				// Host-managed tokens that are stale but not expired: note
				// it, and keep serving them.
				return states.Stale, nil, nil
			}
			return s, nil, nil
		case states.Stale:
			off, err := m.backingOff(now)
			switch {
			case err != nil:
				return 0, nil, err
			case off:
				return s, nil, nil
			case m.hostManaged() && Expired(m.Record, now):
				return m.askHost()
			case m.hostManaged():
				return s, nil, nil
			}
			return m.startRefresh()
		}

	case states.RefreshRequested:
		switch s {
		case states.Fresh, states.Stale:
			// Asked for explicitly: no backoff is honoured.
			if m.hostManaged() {
				return m.askHost()
			}
			return m.startRefresh()
		default:
			return s, nil, nil
		}

	case states.Unauthorized:
		switch s {
		case states.APIKey:
			return s, nil, nil
		case states.Fresh, states.Stale:
			if e.Generation != m.Generation {
				// A token that was already replaced: retry with the
				// current one, start nothing.
				return s, nil, nil
			}
			if m.Generation > m.QuietAbove && now.Before(m.QuietUntil) {
				// The tokens a recovery just brought were refused too:
				// another refresh would not help.
				return s, nil, nil
			}
			if s == states.Stale {
				off, err := m.backingOff(now)
				if err != nil {
					return 0, nil, err
				}
				if off {
					return s, nil, nil
				}
			}
			m.QuietUntil = now.Add(m.Policy.recoveryCooldown())
			m.QuietAbove = m.Generation
			if m.hostManaged() {
				return m.askHost()
			}
			return m.startRefresh()
		default:
			return s, nil, nil
		}

	case states.Woke:
		if s == states.Fresh && e.Generation == m.Generation && m.Policy.Stale(m.Record, now) {
			return states.Stale, nil, nil
		}
		return s, nil, nil

	case states.StoreReread:
		// The store is locked and read again before a redemption.
		if s != states.Refreshing {
			return 0, nil, m.notPermitted(ev)
		}
		rec := e.Record
		// Nobody rotated the tokens since we last read or wrote the store:
		// it is as we left it, or holds our refresh token, or the one we
		// spent to get ours.
		unchanged := e.Version == m.Version || m.holdsSpent(rec) ||
			(rec.Mode == m.Record.Mode && rec.Tokens.RefreshToken.Equal(m.Record.Tokens.RefreshToken))
		switch {
		case rec.IsZero():
			// Signed out elsewhere: follow, never redeem.
			m.adopt(rec, e.Version, false)
			return states.LoggedOut, m.cmds(effects.ReleaseLock{}, m.notify()), nil
		case m.Policy.Violates(rec):
			m.fail(states.ReasonRestricted)
			m.Version = e.Version
			return states.FailedPermanent, m.cmds(effects.ReleaseLock{},
				effects.DeleteStores{Generation: m.Generation}, m.notify()), nil
		case unchanged:
			m.Version = e.Version
			return s, m.cmds(m.redeem()), nil
		case rec.Mode == states.ModeAPIKey:
			m.adopt(rec, e.Version, false)
			return states.APIKey, m.cmds(effects.ReleaseLock{}, m.notify()), nil
		case rec.Mode == states.ModeManaged && m.Policy.Stale(rec, now):
			// Someone else's tokens, already stale: take them and redeem
			// theirs, not ours.
			m.adopt(rec, e.Version, false)
			return s, m.cmds(m.redeem()), nil
		default:
			// Someone else refreshed already: take their tokens.
			m.adopt(rec, e.Version, false)
			return states.Fresh, m.cmds(append([]effects.Command{effects.ReleaseLock{}, m.notify()},
				m.wake()...)...), nil
		}

	case states.RereadFailed:
		if s != states.Refreshing {
			return 0, nil, m.notPermitted(ev)
		}
		if e.Unreadable {
			m.fail(states.ReasonUnreadableStore)
			return states.FailedPermanent, m.cmds(effects.ReleaseLock{}, m.notify()), nil
		}
		m.backoff(now, 0, 0.5)
		return states.Stale, m.cmds(effects.ReleaseLock{}, m.notify()), nil

	case states.RefreshSucceeded:
		if s != states.Refreshing {
			return 0, nil, m.notPermitted(ev)
		}
		m.apply(e.Grant, e.At)
		// Saved before anyone sees the new access token.
		return s, m.cmds(m.persist(m.Version)), nil

	case states.RefreshFailed:
		if s != states.Refreshing {
			return 0, nil, m.notPermitted(ev)
		}
		var hint time.Duration
		if e.Err != nil {
			hint = e.Err.RetryAfter
		}
		m.backoff(now, hint, e.Jitter)
		return states.Stale, m.cmds(effects.ReleaseLock{}, m.notify()), nil

	case states.RefreshRejected:
		if s != states.Refreshing {
			return 0, nil, m.notPermitted(ev)
		}
		// The credential is kept (a reload that finds it again stays
		// failed), but it is dead.
		m.Failure = states.ReasonUnknown
		if e.Err != nil && e.Err.Reason != states.ReasonNone {
			m.Failure = e.Err.Reason
		}
		m.HasError = true
		m.RetryAt, m.RetryLatest, m.Attempts = time.Time{}, time.Time{}, 0
		return states.FailedPermanent, m.cmds(effects.ReleaseLock{}, m.notify()), nil

	case states.HostRefreshSucceeded:
		if s != states.ExternalRefresh {
			return 0, nil, m.notPermitted(ev)
		}
		g := e.Grant
		if ws := m.Policy.ForcedWorkspace; ws != "" && (g.IDTokenErr != nil || g.Claims.AccountID != ws) {
			// Tokens for another workspace (or that cannot say which) are
			// not taken.
			m.backoff(now, 0, 0.5)
			return states.Stale, m.cmds(m.notify()), nil
		}
		m.apply(g, e.At)
		if g.IDTokenErr == nil && g.Claims.AccountID != "" {
			m.Record.Tokens.AccountID = g.Claims.AccountID
		}
		return s, m.cmds(m.persist(m.Version)), nil

	case states.HostRefreshFailed:
		if s != states.ExternalRefresh {
			return 0, nil, m.notPermitted(ev)
		}
		m.backoff(now, 0, e.Jitter)
		return states.Stale, m.cmds(m.notify()), nil

	case states.Persisted:
		switch s {
		case states.Refreshing, states.ExternalRefresh:
			m.Version, m.Unsaved = e.Version, false
			return states.Fresh, m.cmds(append([]effects.Command{effects.ReleaseLock{}, m.notify()},
				m.wake()...)...), nil
		case states.APIKey, states.Fresh, states.Stale:
			m.Version, m.Unsaved = e.Version, false
			return s, nil, nil
		}
		return 0, nil, m.notPermitted(ev)

	case states.PersistFailed:
		switch s {
		case states.Refreshing, states.ExternalRefresh:
			// The new tokens are valid: serve them from memory.
			m.Unsaved, m.HasError = true, true
			return states.Fresh, m.cmds(append([]effects.Command{effects.ReleaseLock{}, m.notify()},
				m.wake()...)...), nil
		case states.APIKey, states.Fresh, states.Stale:
			m.Unsaved, m.HasError = true, true
			return s, nil, nil
		}
		return 0, nil, m.notPermitted(ev)
	}
	return 0, nil, fmt.Errorf("%w: %T", engine.ErrInvalidEvent, ev)
}

func (m *Model) hostManaged() bool { return m.Record.Mode == states.ModeExternal }

// holdsSpent reports whether rec holds the refresh token this process
// already spent.
func (m *Model) holdsSpent(rec states.Record) bool {
	rt := rec.Tokens.RefreshToken
	return rec.Mode == states.ModeManaged && !rt.IsZero() && rt.Equal(m.Spent)
}

func (m *Model) startRefresh() (states.State, []effects.Command, error) {
	return states.Refreshing, m.cmds(effects.LockAndReread{Generation: m.Generation}), nil
}

func (m *Model) askHost() (states.State, []effects.Command, error) {
	return states.ExternalRefresh, m.cmds(effects.AskHost{Generation: m.Generation,
		PreviousAccountID: m.Record.AccountID()}), nil
}

func (m *Model) cmds(c ...effects.Command) []effects.Command { return c }

func (m *Model) persist(expected states.Version) effects.Command {
	return effects.PersistRecord{Generation: m.Generation, Record: m.Record, Expected: expected}
}

func (m *Model) redeem() effects.Command {
	return effects.RedeemRefreshToken{Generation: m.Generation, RefreshToken: m.Record.Tokens.RefreshToken}
}

func (m *Model) notify() effects.Command { return effects.NotifyObservers{Generation: m.Generation} }

// wake is the timer for when the tokens turn stale; none when they never
// do by time alone.
func (m *Model) wake() []effects.Command {
	if at, ok := m.Policy.StaleAt(m.Record); ok {
		return []effects.Command{effects.WakeAt{Generation: m.Generation, At: at}}
	}
	return nil
}

// backingOff reports whether now is before the end of the backoff.
func (m *Model) backingOff(now time.Time) (bool, error) {
	switch {
	case m.RetryLatest.IsZero():
		return now.Before(m.RetryAt), nil
	case now.Before(m.RetryAt):
		return true, nil
	case !now.Before(m.RetryLatest):
		return false, nil
	}
	return false, ErrUndecided
}

// adopt makes rec the credential. A different credential (or the same one
// arriving by another route) is a new generation with a clean slate.
func (m *Model) adopt(rec states.Record, v states.Version, fromEnv bool) {
	if !rec.SameCredential(m.Record) || fromEnv != m.FromEnv {
		m.Generation++
		m.HasError = false
		m.RetryAt, m.RetryLatest, m.Attempts = time.Time{}, time.Time{}, 0
		m.Unsaved = false
	}
	m.Record, m.Version, m.FromEnv = rec, v, fromEnv
	m.Failure = states.ReasonNone
}

// adoptLoaded takes what a load found. A credential other than the one in
// memory came from outside (another program, a person): the quiet after a
// recovery was about the tokens that recovery brought, not about it.
func (m *Model) adoptLoaded(e states.Loaded) {
	if !e.Record.SameCredential(m.Record) || e.FromEnv != m.FromEnv {
		m.QuietUntil, m.QuietAbove = time.Time{}, 0
	}
	m.adopt(e.Record, e.Version, e.FromEnv)
}

// fail forgets the credential and records why it failed for good.
func (m *Model) fail(r states.Reason) {
	m.Generation++
	m.Record = states.Record{}
	m.FromEnv = false
	m.Failure = r
	m.HasError = true
	m.RetryAt, m.RetryLatest, m.Attempts = time.Time{}, time.Time{}, 0
	m.Unsaved = false
	m.QuietUntil, m.QuietAbove = time.Time{}, 0
}

// backoff records a transient failure at now. A negative jitter means it is
// unknown: the end of the backoff is then a window.
func (m *Model) backoff(now time.Time, hint time.Duration, jitter float64) {
	m.Attempts++
	m.HasError = true
	if jitter >= 0 {
		m.RetryAt, m.RetryLatest = now.Add(m.Policy.Backoff(m.Attempts, hint, jitter)), time.Time{}
		return
	}
	m.RetryAt = now.Add(m.Policy.Backoff(m.Attempts, hint, 0))
	m.RetryLatest = now.Add(m.Policy.Backoff(m.Attempts, hint, 1))
}

// apply takes new tokens. What a grant leaves out is kept; an id token that
// cannot be read is not kept, but the other tokens are.
func (m *Model) apply(g states.Grant, at time.Time) {
	t := &m.Record.Tokens
	if !g.AccessToken.IsZero() {
		t.AccessToken = g.AccessToken
		m.Record.AccessExpiry = g.AccessExpiry
	}
	if !g.RefreshToken.IsZero() {
		if !g.RefreshToken.Equal(t.RefreshToken) {
			// Rotated: the token redeemed is spent.
			m.Spent = t.RefreshToken
		}
		t.RefreshToken = g.RefreshToken
	}
	m.HasError = false
	if !g.IDToken.IsZero() {
		if g.IDTokenErr == nil {
			t.IDToken = g.IDToken
			m.Record.Claims = g.Claims
		} else {
			m.HasError = true
		}
	}
	m.Record.LastRefresh = at
	m.Generation++
	m.RetryAt, m.RetryLatest, m.Attempts = time.Time{}, time.Time{}, 0
}

// outcomeOf returns the generation an outcome of a command refers to. Woke
// is left out: a timer of an older generation is not refused, only ignored.
func outcomeOf(ev states.Event) (uint64, bool) {
	switch e := ev.(type) {
	case states.StoreReread:
		return e.Generation, true
	case states.RereadFailed:
		return e.Generation, true
	case states.RefreshSucceeded:
		return e.Generation, true
	case states.RefreshFailed:
		return e.Generation, true
	case states.RefreshRejected:
		return e.Generation, true
	case states.HostRefreshSucceeded:
		return e.Generation, true
	case states.HostRefreshFailed:
		return e.Generation, true
	case states.Persisted:
		return e.Generation, true
	case states.PersistFailed:
		return e.Generation, true
	case states.StoresCleared:
		return e.Generation, true
	}
	return 0, false
}

// checkEvent refuses events no host or runner should produce.
func checkEvent(ev states.Event) error {
	invalid := func(why string) error { return fmt.Errorf("%w: %s", engine.ErrInvalidEvent, why) }
	if ev == nil {
		return invalid("nil event")
	}
	if ev.Time().IsZero() {
		return invalid("no time")
	}
	switch e := ev.(type) {
	case states.LoginRequested:
		if !usable(e.Record) {
			return invalid("login without a usable credential")
		}
	case states.Loaded:
		if e.Err == nil && !e.Record.IsZero() && !usable(e.Record) {
			return invalid("loaded an unusable credential")
		}
		if e.FromEnv && e.Record.Mode != states.ModeAPIKey {
			return invalid("only an API key comes from the environment")
		}
	case states.StoreReread:
		if !e.Record.IsZero() && !usable(e.Record) {
			return invalid("re-read an unusable credential")
		}
	}
	return nil
}

// usable reports whether rec holds what its mode needs.
func usable(rec states.Record) bool {
	switch rec.Mode {
	case states.ModeAPIKey:
		return !rec.APIKey.IsZero()
	case states.ModeManaged:
		return !rec.Tokens.AccessToken.IsZero() && !rec.Tokens.RefreshToken.IsZero()
	case states.ModeExternal:
		return !rec.Tokens.AccessToken.IsZero()
	}
	return false
}
