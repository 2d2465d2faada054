package spec_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/engine/enginetest"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
)

// sim is the reference for the Manager suite: the reference model of the
// machine, surrounded by a naive model of everything the manager talks to
// (the store, the token server, the host, the timer, the store lock) and of
// the manager's own API (the hot path, Token's rounds, Observe's decision).
// It predicts, for each action, every transition the manager makes and
// what the caller gets back.
//
// Token values the sim cannot know in advance (what the server returns on a
// redemption) are read from the real exchanges on the wire, in order; the
// sim checks that each one happened when it expected and carried the
// refresh token it expected.
type sim struct {
	model enginetest.Model
	every bool // StepEveryRequest
	now   time.Time

	store  simStore
	server simServer
	host   simHost
	timer  *effects.WakeAt // the manager keeps one timer
	locked bool            // the runner holds the store lock

	// Faults armed for the current action.
	refresh   enginetest.RefreshOutcome // what the next redemption meets
	lockTaken bool                      // another process holds the store lock
	saveFault saveFault
	onSave    func(*simStore) // what the other process writes before a save

	// The real exchanges of this action, consumed by redemptions; nil in a
	// dry run, which makes up tokens instead.
	exchanges []enginetest.Exchange
	dry       bool

	// atHold, when set, runs just before the next redemption or question to
	// the host: the point where a burst holds the flight.
	atHold func()

	// backoffEnd is the latest a backoff can end, known before the engine's
	// jitter picked the moment: a clock move past it does not depend on
	// the jitter, so a replay of the same case moves the clock the same.
	backoffEnd time.Time

	trace    []enginetest.Step // transitions of the current action
	problems []string          // predictions the real exchanges contradicted
	counts   simCounts         // external calls of the current action
}

type saveFault uint8

const (
	saveOK saveFault = iota
	saveFails
	saveConflicts
)

// simCounts are the external calls an action makes; a dry run uses them to
// decide which faults to arm.
type simCounts struct {
	redeems, hostAsks, saves, locks int
}

// clone returns an independent copy, for a dry run.
func (s *sim) clone() *sim {
	c := *s
	c.store = s.store.clone()
	c.server = s.server.clone()
	c.trace, c.problems, c.exchanges, c.counts = nil, nil, nil, simCounts{}
	if s.timer != nil {
		t := *s.timer
		c.timer = &t
	}
	return &c
}

// beginAction clears the per-action bookkeeping.
func (s *sim) beginAction() {
	s.trace, s.problems, s.counts = nil, nil, simCounts{}
	s.refresh = enginetest.RefreshOutcomes()[0]
	s.lockTaken, s.saveFault, s.onSave = false, saveOK, nil
}

func (s *sim) problem(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

// --- the store ------------------------------------------------------------

// simStore is what storage.Store holds: the file and, for host-managed
// tokens, the process's memory, which Load prefers.
type simStore struct {
	file    states.Record // zero: no record (or a corrupt file)
	corrupt int           // > 0: the file holds garbage number corrupt
	memory  *states.Record
}

func (st simStore) clone() simStore {
	if st.memory != nil {
		m := *st.memory
		st.memory = &m
	}
	return st
}

// canon names a record's stored content: two records are stored as the
// same bytes, and so have the same version, exactly when these agree.
func canon(r states.Record) string {
	last := ""
	if !r.LastRefresh.IsZero() {
		last = r.LastRefresh.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s", r.Mode, r.APIKey.Reveal(), r.Tokens.IDToken.Reveal(),
		r.Tokens.AccessToken.Reveal(), r.Tokens.RefreshToken.Reveal(), r.Tokens.AccountID, last)
}

func (st simStore) fileVersion() states.Version {
	switch {
	case st.corrupt > 0:
		return states.Version(fmt.Sprintf("file!%d", st.corrupt))
	case st.file.IsZero():
		return states.NoVersion
	}
	return states.Version("file:" + canon(st.file))
}

// load is Store.Load: the memory entry if there is one, else the file.
func (st simStore) load() (rec states.Record, v states.Version, unreadable bool) {
	if st.memory != nil {
		return *st.memory, states.Version("memory:" + canon(*st.memory)), false
	}
	return st.file, st.fileVersion(), st.corrupt > 0
}

// save is Store.Save: host-managed tokens go to memory, the rest to the
// file, if what Load shows still has the expected version.
func (st *simStore) save(rec states.Record, expected states.Version) (states.Version, bool) {
	if _, v, _ := st.load(); expected != states.AnyVersion && expected != v {
		return states.NoVersion, false
	}
	if rec.Mode == states.ModeExternal {
		r := rec
		st.memory = &r
		return states.Version("memory:" + canon(rec)), true
	}
	// A persisted credential replaces host-managed tokens in memory.
	st.memory = nil
	st.writeFile(rec)
	return st.fileVersion(), true
}

// writeFile is what any process's save leaves in auth.json. The file keeps
// no expiry of its own: a load reads the access token's exp, in whole
// seconds, which is earlier than an expiry counted from an RFC 6749
// expires_in at a moment with a fraction of a second.
func (st *simStore) writeFile(rec states.Record) {
	rec.AccessExpiry = rec.AccessExpiry.Truncate(time.Second)
	st.file, st.corrupt = rec, 0
}

func (st *simStore) clear() { st.file, st.corrupt, st.memory = states.Record{}, 0, nil }

// --- the token server -----------------------------------------------------

type tokenState uint8

const (
	tokenActive tokenState = iota
	tokenUsed
	tokenRevoked
)

// simServer is the token server: which refresh tokens it knows, in which
// state, and for whom.
type simServer struct {
	rotate   bool
	lifetime time.Duration
	tokens   map[string]simToken
	// rfc6749: the server speaks plain RFC 6749, which has one code for
	// every refused grant and sends no id token unless the scope asks.
	rfc6749 bool
}

type simToken struct {
	state tokenState
	acct  oauthtest.Account
}

func (sv simServer) clone() simServer {
	m := make(map[string]simToken, len(sv.tokens))
	for k, v := range sv.tokens {
		m[k] = v
	}
	sv.tokens = m
	return sv
}

// issued registers a token set the server handed out.
func (sv *simServer) issued(ts oauthtest.TokenSet) {
	if ts.RefreshToken != "" {
		sv.tokens[ts.RefreshToken] = simToken{acct: ts.Account}
	}
}

// claims are what an id token minted for acct says.
func claims(acct oauthtest.Account) states.Claims {
	return states.Claims{Email: acct.Email, Plan: states.Plan(acct.Plan), UserID: acct.UserID,
		AccountID: acct.AccountID}
}

// expiry is the exp the server stamps on tokens minted at now.
func (sv simServer) expiry(now time.Time) time.Time {
	if sv.rfc6749 {
		// The client reads expires_in, counted from when it got the answer.
		return now.Add(sv.lifetime).UTC()
	}
	// The client reads the JWT's exp, which is in whole seconds.
	return now.Add(sv.lifetime).Truncate(time.Second).UTC()
}

// redeem is the server's answer to rt, before any fault: new tokens, or the
// reason it refuses.
func (sv *simServer) redeem(rt string, ex enginetest.Exchange, now time.Time) (states.Grant, states.Reason) {
	tok, ok := sv.tokens[rt]
	switch {
	case (!ok || tok.state != tokenActive) && sv.rfc6749:
		return states.Grant{}, states.ReasonInvalidGrant
	case !ok || tok.state == tokenRevoked:
		return states.Grant{}, states.ReasonRevoked
	case tok.state == tokenUsed:
		return states.Grant{}, states.ReasonReused
	}
	g := states.Grant{
		AccessToken:  states.NewSecret(ex.Access),
		AccessExpiry: sv.expiry(now),
	}
	if !sv.rfc6749 {
		g.IDToken, g.Claims = states.NewSecret(ex.IDToken), claims(tok.acct)
	}
	if sv.rotate {
		g.RefreshToken = states.NewSecret(ex.Refresh)
		sv.tokens[rt] = simToken{state: tokenUsed, acct: tok.acct}
		sv.tokens[ex.Refresh] = simToken{acct: tok.acct}
	}
	return g, states.ReasonNone
}

// --- the host ---------------------------------------------------------------

// simHost is the host double: whether it is registered, and what it
// answers next.
type simHost struct {
	registered bool
	answer     enginetest.HostClass
	// handed are the token sets the real host handed out in this action,
	// consumed in order; nil in a dry run.
	handed []oauthtest.TokenSet
}

// --- the runner -------------------------------------------------------------

// apply steps the model with ev and runs the commands that follow, as the
// manager does: each outcome is the next event, until a step has none.
func (s *sim) apply(ev states.Event) (enginetest.Step, error) {
	st, err := s.model.Step(ev)
	if err != nil {
		return st, err
	}
	s.trace = append(s.trace, st)
	s.run(st.Commands)
	return st, nil
}

func (s *sim) run(cmds []effects.Command) {
	for len(cmds) > 0 {
		var outcome states.Event
		for _, c := range cmds {
			var ev states.Event
			switch c := c.(type) {
			case effects.WakeAt:
				w := c
				s.timer = &w
			case effects.ReleaseLock:
				s.locked = false
			case effects.NotifyObservers:
			case effects.PersistRecord:
				ev = s.persist(c)
			case effects.DeleteStores:
				s.store.clear()
				ev = states.StoresCleared{At: s.now, Generation: c.Generation}
			case effects.LockAndReread:
				ev = s.lockAndReread(c)
			case effects.RedeemRefreshToken:
				s.hold()
				ev = s.redeem(c)
			case effects.AskHost:
				if s.host.registered {
					s.hold()
				}
				ev = s.askHost(c)
			}
			if ev != nil && outcome == nil {
				outcome = ev
			}
		}
		if outcome == nil {
			return
		}
		st, err := s.model.Step(outcome)
		if err != nil {
			s.problem("the model refused the outcome %s: %v", outcome.Kind(), err)
			s.locked = false
			return
		}
		s.trace = append(s.trace, st)
		cmds = st.Commands
	}
}

func (s *sim) hold() {
	if f := s.atHold; f != nil {
		s.atHold = nil
		f()
	}
}

// takeLock is the runner taking the store lock, unless it holds it.
func (s *sim) takeLock() bool {
	if s.locked {
		return true
	}
	s.counts.locks++
	if s.lockTaken {
		return false
	}
	s.locked = true
	return true
}

func (s *sim) persist(c effects.PersistRecord) states.Event {
	held := s.locked
	if !s.takeLock() {
		return states.PersistFailed{At: s.now, Generation: c.Generation}
	}
	if !held {
		defer func() { s.locked = false }()
	}
	s.counts.saves++
	switch s.saveFault {
	case saveFails:
		s.saveFault = saveOK
		return states.PersistFailed{At: s.now, Generation: c.Generation}
	case saveConflicts:
		s.saveFault = saveOK
		if s.onSave != nil {
			s.onSave(&s.store)
		}
	}
	v, ok := s.store.save(c.Record, c.Expected)
	if !ok {
		return states.PersistFailed{At: s.now, Generation: c.Generation, Conflict: true}
	}
	return states.Persisted{At: s.now, Generation: c.Generation, Version: v}
}

func (s *sim) lockAndReread(c effects.LockAndReread) states.Event {
	if !s.takeLock() {
		return states.RereadFailed{At: s.now, Generation: c.Generation}
	}
	rec, v, unreadable := s.store.load()
	if unreadable {
		return states.RereadFailed{At: s.now, Generation: c.Generation, Unreadable: true}
	}
	return states.StoreReread{At: s.now, Generation: c.Generation, Record: rec, Version: v}
}

// nextExchange takes the next real request of this process, checking it
// presented rt.
func (s *sim) nextExchange(rt string) enginetest.Exchange {
	if s.dry {
		n := len(s.server.tokens)
		return enginetest.Exchange{Sent: rt, Access: fmt.Sprintf("dry-access-%d", n),
			Refresh: fmt.Sprintf("dry-refresh-%d", n), IDToken: "dry-id"}
	}
	if len(s.exchanges) == 0 {
		s.problem("expected a redemption, but the token server saw no request")
		return enginetest.Exchange{Sent: rt}
	}
	ex := s.exchanges[0]
	s.exchanges = s.exchanges[1:]
	if ex.Sent != rt {
		s.problem("the redemption presented another refresh token than the one expected")
	}
	return ex
}

func (s *sim) redeem(c effects.RedeemRefreshToken) states.Event {
	s.counts.redeems++
	rt := c.RefreshToken.Reveal()
	ex := s.nextExchange(rt)
	o := s.refresh
	s.refresh = enginetest.RefreshOutcomes()[0]

	fail := func(hint time.Duration) states.Event {
		return states.RefreshFailed{At: s.now, Generation: c.Generation, Jitter: -1,
			Err: &states.RefreshError{RetryAfter: hint}}
	}
	switch {
	case o.Class == enginetest.RefreshTransient:
		return fail(o.RetryAfter)
	case o.Class == enginetest.RefreshPermanent && s.server.rfc6749 && o.Code != "" &&
		oauth.StandardCodes()[o.Code] == states.ReasonNone:
		// A code only the Codex provider knows: to an RFC 6749 client, a
		// plain 400.
		return fail(0)
	case o.Class == enginetest.RefreshPermanent:
		return states.RefreshRejected{At: s.now, Generation: c.Generation,
			Err: &states.RefreshError{Permanent: true, Reason: o.Reason}}
	case o.Class == enginetest.RefreshLost:
		// Redeemed (and rotated) on the server; the answer never comes.
		if tok, ok := s.server.tokens[rt]; ok && tok.state == tokenActive && s.server.rotate {
			s.server.tokens[rt] = simToken{state: tokenUsed, acct: tok.acct}
		}
		return fail(0)
	}

	g, refused := s.server.redeem(rt, ex, s.now)
	if refused != states.ReasonNone {
		return states.RefreshRejected{At: s.now, Generation: c.Generation,
			Err: &states.RefreshError{Permanent: true, Reason: refused}}
	}
	if o.Class == enginetest.RefreshBadIDToken {
		g.IDToken, g.Claims = states.NewSecret(ex.IDToken), states.Claims{}
		g.IDTokenErr = errors.New("the id token does not parse")
	}
	return states.RefreshSucceeded{At: s.now, Generation: c.Generation, Grant: g}
}

func (s *sim) askHost(c effects.AskHost) states.Event {
	failed := states.HostRefreshFailed{At: s.now, Generation: c.Generation, Jitter: -1}
	if !s.host.registered {
		return failed
	}
	s.counts.hostAsks++
	var ts oauthtest.TokenSet
	switch s.host.answer {
	case enginetest.HostTokens, enginetest.HostOtherWorkspace, enginetest.HostBadIDToken:
		acct := mainAccount
		if s.host.answer == enginetest.HostOtherWorkspace {
			acct = otherAccount
		}
		ts = oauthtest.TokenSet{AccessToken: "dry-host-access", IDToken: "dry-host-id",
			AccessExpiry: s.server.expiry(s.now), Account: acct}
		if !s.dry {
			if len(s.host.handed) == 0 {
				s.problem("expected the host to hand out tokens, but it did not")
			} else {
				ts, s.host.handed = s.host.handed[0], s.host.handed[1:]
				if ts.Account != acct {
					s.problem("the host handed out tokens for another account than expected")
				}
			}
		}
	}
	switch s.host.answer {
	case enginetest.HostTokens, enginetest.HostOtherWorkspace:
		return states.HostRefreshSucceeded{At: s.now, Generation: c.Generation, Grant: states.Grant{
			AccessToken:  states.NewSecret(ts.AccessToken),
			IDToken:      states.NewSecret(ts.IDToken),
			Claims:       claims(ts.Account),
			AccessExpiry: ts.AccessExpiry,
		}}
	}
	return failed
}

// --- the manager's API ------------------------------------------------------

// result is what a call returned, reduced to what the sim predicts.
type result struct {
	Token  string // for Token, and Observe's retry token
	Action string // for Observe: proceed, retry, give up
	Err    string // errClass of the error
}

// bearer is the token the current credential would be served as.
func (s *sim) bearer() string { return s.model.Record.Bearer().Reveal() }

// serve is what a resting state hands a caller.
func (s *sim) serve() result {
	m := &s.model
	switch m.State {
	case states.Fresh, states.APIKey:
		return result{Token: s.bearer()}
	case states.Stale:
		if m.Record.AccessExpiry.IsZero() || s.now.Before(m.Record.AccessExpiry) {
			return result{Token: s.bearer()}
		}
		return result{Err: "transient"}
	case states.LoggedOut:
		return result{Err: "logged out"}
	case states.FailedPermanent:
		return result{Err: "permanent " + m.Failure.String()}
	}
	return result{Err: "internal"}
}

// token is Manager.Token.
func (s *sim) token() result {
	m := &s.model
	if !s.every {
		at, ok := m.Policy.StaleAt(m.Record)
		if m.State == states.APIKey || (m.State == states.Fresh && (!ok || !s.now.After(at))) {
			return result{Token: s.bearer()}
		}
	}
	for round := 0; ; round++ {
		st, err := s.apply(states.TokenRequested{At: s.now})
		if err != nil {
			return result{Err: errClass(err)}
		}
		if st.To.Waiting() {
			if round >= 3 {
				return result{Err: "transient"}
			}
			continue
		}
		return s.serve()
	}
}

// observe is Manager.Observe for a 401.
func (s *sim) observe(token string) result {
	gen := s.model.Generation
	if token == "" || token != s.bearer() {
		gen--
	}
	m := &s.model
	// Tokens that a recovery brought moments ago, refused too.
	again := gen == m.Generation && (m.State == states.Fresh || m.State == states.Stale) &&
		m.Generation > m.QuietAbove && s.now.Before(m.QuietUntil)
	if _, err := s.apply(states.Unauthorized{At: s.now, Generation: gen}); err != nil {
		return result{Action: "give up", Err: errClass(err)}
	}
	if again {
		return result{Action: "give up", Err: "refused again"}
	}
	return s.decide(token)
}

// decide is Observe's answer once the machine has settled.
func (s *sim) decide(token string) result {
	switch st := s.model.State; {
	case st == states.LoggedOut || st == states.FailedPermanent:
		r := s.serve()
		return result{Action: "give up", Err: r.Err}
	case s.bearer() != "" && s.bearer() != token:
		r := s.serve()
		if r.Err != "" {
			return result{Action: "give up", Err: r.Err}
		}
		return result{Action: "retry", Token: r.Token}
	case st == states.APIKey:
		return result{Action: "give up", Err: "key rejected"}
	}
	return result{Action: "give up", Err: "transient"}
}

// refresh is Manager.Refresh.
func (s *sim) refreshNow() result {
	if _, err := s.apply(states.RefreshRequested{At: s.now}); err != nil {
		return result{Err: errClass(err)}
	}
	switch s.model.State {
	case states.Fresh:
		return result{}
	case states.APIKey:
		return result{Err: "not refreshable"}
	case states.Stale:
		return result{Err: "transient"}
	}
	r := s.serve()
	return result{Err: r.Err}
}

// login is the Login methods once the record is built.
func (s *sim) login(rec states.Record) result {
	st, err := s.apply(states.LoginRequested{At: s.now, Record: rec})
	switch {
	case err != nil:
		return result{Err: errClass(err)}
	case st.To == states.FailedPermanent:
		return result{Err: "permanent " + s.model.Failure.String()}
	case s.model.Generation == st.Generation && s.model.Unsaved:
		return result{Err: "unsaved"}
	}
	return result{}
}

func (s *sim) logout() result {
	if _, err := s.apply(states.LogoutRequested{At: s.now}); err != nil {
		return result{Err: errClass(err)}
	}
	return result{}
}

// load is what the manager reads at start-up and on reload.
func (s *sim) load(envKey string) states.Loaded {
	if envKey != "" {
		return states.Loaded{At: s.now, FromEnv: true,
			Record: states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret(envKey)}}
	}
	rec, v, unreadable := s.store.load()
	if unreadable {
		return states.Loaded{At: s.now, Version: v, Err: errors.New("unreadable")}
	}
	return states.Loaded{At: s.now, Record: rec, Version: v}
}

func (s *sim) reload(envKey string) result {
	if _, err := s.apply(s.load(envKey)); err != nil {
		return result{Err: errClass(err)}
	}
	return result{}
}

// restart is Close and New: a fresh machine under a new policy, which
// loads the store. The memory entry survives: it belongs to the process.
func (s *sim) restart(p enginetest.Policy, every bool, envKey string) result {
	s.timer, s.locked = nil, false
	s.model = *enginetest.NewModel(p)
	s.every = every
	return s.reload(envKey)
}

// advance moves the clock; a due timer delivers its Woke.
func (s *sim) advance(to time.Time) {
	if to.After(s.now) {
		s.now = to
	}
	if t := s.timer; t != nil && !t.At.After(s.now) {
		s.timer = nil
		if _, err := s.apply(states.Woke{At: s.now, Generation: t.Generation}); err != nil {
			s.problem("the model refused a timer: %v", err)
		}
	}
}

// barrier is the 401 for no token that the suite sends after each action
// to wait for the manager to rest: it changes nothing.
func (s *sim) barrier() {
	if _, err := s.model.Step(states.Unauthorized{At: s.now, Generation: s.model.Generation - 1}); err != nil {
		s.problem("the model refused the barrier: %v", err)
	}
}
