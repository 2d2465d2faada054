package enginetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"pgregory.net/rapid"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
)

// CheckOptions say what a Checker can see of the world around a manager.
// Every field is optional; a check whose inputs are missing is skipped.
type CheckOptions struct {
	// Logs is the capture the manager logs into (engine.Config.Logger set
	// to Logs.Logger()). It gives the transitions and the text to search
	// for secrets.
	Logs *Logs
	// Secrets are the secrets the test handed out or received.
	Secrets *Secrets
	// Wire is the manager's HTTP transport to the token endpoint.
	Wire *Wire
	// Store is the manager's store; its journal of saves tells whether new
	// tokens were saved before they were handed out.
	Store *FaultStore
	// HostHandouts returns the access tokens a host double handed out so
	// far, in order.
	HostHandouts func() []string
	// Unreadable reports whether the test itself made the store
	// unreadable; without it, a store that does not load is a violation.
	Unreadable func() bool
	// ReplayExpected reports whether a refresh token this process saw
	// rotated away may be sent again now: only a test that pins down a
	// known bug says yes.
	ReplayExpected func() bool
	// IsAPIKey reports whether a value is one of the test's API keys.
	IsAPIKey func(string) bool
}

// Checker checks the invariants every Manager keeps, whatever happens to
// it, so that a test (a host's own rapid test, say) can assert them after
// each step:
//
//   - the state is one of the seven, and a failure reason is set exactly in
//     failed_permanent;
//   - failed_permanent is left only by a login, a logout or a load;
//   - an API key never starts a refresh, and is never sent as a refresh
//     token;
//   - a refresh token is redeemed only while refreshing, and leaving
//     refreshing releases the store lock and wakes the waiters;
//   - at most one redemption is in flight, and no refresh token this
//     process saw rotated away is sent again;
//   - when the machine enters fresh after a refresh, the new tokens are
//     already saved (or the step reports that the save failed);
//   - a call that hands out a token hands out a token or an error, never
//     neither, and no error text or log line holds a secret;
//   - the store always loads, unless the test broke it on purpose.
//
// Create it with NewChecker before the manager, and call CheckInvariants
// after every step.
type Checker struct {
	o CheckOptions

	mu         sync.Mutex
	violations []string
	logMark    int
	textMark   int
	replays    int
	wireMark   int
	hostMark   int
}

// NewChecker returns a checker. It watches o.Logs from now on, so create it
// before the manager, or the first transitions go unchecked.
func NewChecker(o CheckOptions) *Checker {
	c := &Checker{o: o}
	if o.Logs != nil {
		o.Logs.OnTransition(c.onTransition)
	}
	return c
}

func (c *Checker) violate(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violations = append(c.violations, fmt.Sprintf(format, args...))
}

// Handed checks what a call that hands out a token returned (Token, or
// Observe's retry token).
func (c *Checker) Handed(token string, err error) {
	if token == "" && err == nil {
		c.violate("a call returned neither a token nor an error")
	}
	c.Err(err)
}

// Err checks the text of an error a call returned.
func (c *Checker) Err(err error) {
	if err == nil || c.o.Secrets == nil {
		return
	}
	if leaks := c.o.Secrets.Find(err.Error()); len(leaks) > 0 {
		c.violate("an error text holds %s", strings.Join(leaks, ", "))
	}
}

// onTransition runs as the manager makes each transition, under its lock:
// it is the only moment at which "saved before handed out" can be told.
func (c *Checker) onTransition(t LoggedTransition) {
	flight := t.From == states.Refreshing.String() || t.From == states.ExternalRefresh.String()
	if !flight || t.To == t.From {
		return
	}
	var exs []Exchange
	if c.o.Wire != nil {
		exs = c.o.Wire.Exchanges()
	}
	var hosted []string
	if c.o.HostHandouts != nil {
		hosted = c.o.HostHandouts()
	}
	c.mu.Lock()
	newExs, newHosted := exs[min(c.wireMark, len(exs)):], hosted[min(c.hostMark, len(hosted)):]
	c.wireMark, c.hostMark = len(exs), len(hosted)
	c.mu.Unlock()
	if t.To != states.Fresh.String() || t.Event == states.KindPersistFailed.String() || c.o.Store == nil {
		// Tokens whose save failed are served from memory, by design.
		return
	}
	saves := c.o.Store.Saves()
	saved := func(access, refresh string) bool {
		return slices.ContainsFunc(saves, func(s Save) bool {
			return s.Err == nil && s.Record.Tokens.AccessToken.Reveal() == access &&
				(refresh == "" || s.Record.Tokens.RefreshToken.Reveal() == refresh)
		})
	}
	for _, ex := range newExs {
		if ex.Access != "" && !saved(ex.Access, ex.Refresh) {
			c.violate("entered fresh (rule %s) before a redemption's tokens were saved", t.Rule)
		}
	}
	for _, access := range newHosted {
		if !saved(access, "") {
			c.violate("entered fresh (rule %s) before the host's tokens were saved", t.Rule)
		}
	}
}

// CheckInvariants fails t if m, or the world around it, broke an invariant
// since the last check. Pass the manager in use: after a restart, the new
// one.
func (c *Checker) CheckInvariants(t rapid.TB, m *engine.Manager) {
	t.Helper()
	if v := c.Check(m); len(v) > 0 {
		t.Fatalf("invariants broken:\n  %s", strings.Join(v, "\n  "))
	}
}

// Check returns the invariants m, or the world around it, broke since the
// last check, one line each.
func (c *Checker) Check(m *engine.Manager) []string {
	snap := m.Snapshot()
	switch {
	case !snap.State.Valid():
		c.violate("the state %v is not one of the seven", snap.State)
	case (snap.State == states.FailedPermanent) != (snap.Failure != states.ReasonNone):
		c.violate("state %s with failure reason %s", snap.State, snap.Failure)
	}
	c.checkTransitions()
	c.checkWire()
	c.checkLogText()
	c.checkStore()

	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.violations
	c.violations = nil
	return v
}

func (c *Checker) checkTransitions() {
	if c.o.Logs == nil {
		return
	}
	all := c.o.Logs.Transitions()
	c.mu.Lock()
	fresh := all[min(c.logMark, len(all)):]
	c.logMark = len(all)
	c.mu.Unlock()
	for _, t := range fresh {
		outside := t.Event == states.KindLoaded.String() || t.Event == states.KindLoginRequested.String() ||
			t.Event == states.KindLogoutRequested.String()
		if t.From == states.FailedPermanent.String() && t.To != t.From && !outside {
			c.violate("failed_permanent left on %s (rule %s)", t.Event, t.Rule)
		}
		if t.From == states.APIKey.String() &&
			(t.To == states.Refreshing.String() || t.To == states.ExternalRefresh.String()) {
			c.violate("an API key started a refresh (rule %s)", t.Rule)
		}
	}
}

// CheckTransition checks the commands of one transition a subscriber saw.
func (c *Checker) CheckTransition(t engine.Transition) {
	redeems := slices.Contains(t.Commands, effects.KindRedeemRefreshToken)
	if redeems && (t.From != states.Refreshing || t.To != states.Refreshing) {
		c.violate("rule %s redeems a refresh token from %s to %s", t.Rule, t.From, t.To)
	}
	if t.From == states.Refreshing && t.To != states.Refreshing &&
		!slices.Contains(t.Commands, effects.KindReleaseLock) {
		c.violate("rule %s leaves refreshing without releasing the store lock", t.Rule)
	}
	if t.From.Waiting() && t.To != t.From && !slices.Contains(t.Commands, effects.KindNotifyObservers) {
		c.violate("rule %s leaves %s without waking the waiters", t.Rule, t.From)
	}
}

func (c *Checker) checkWire() {
	w := c.o.Wire
	if w == nil {
		return
	}
	if n := w.MaxInFlight(); n > 1 {
		c.violate("%d redemptions were in flight at once", n)
	}
	replays := w.Replays()
	c.mu.Lock()
	n := len(replays) - c.replays
	c.replays = len(replays)
	c.mu.Unlock()
	if n > 0 && (c.o.ReplayExpected == nil || !c.o.ReplayExpected()) {
		c.violate("%d refresh token(s) this process saw rotated away were sent again", n)
	}
	if c.o.IsAPIKey == nil {
		return
	}
	for _, ex := range w.Exchanges() {
		if c.o.IsAPIKey(ex.Sent) {
			c.violate("an API key was sent as a refresh token")
		}
	}
}

func (c *Checker) checkLogText() {
	if c.o.Logs == nil || c.o.Secrets == nil {
		return
	}
	text := c.o.Logs.Text()
	c.mu.Lock()
	chunk := text[min(c.textMark, len(text)):]
	c.textMark = len(text)
	c.mu.Unlock()
	if leaks := c.o.Secrets.Find(chunk); len(leaks) > 0 {
		c.violate("the log holds %s", strings.Join(leaks, ", "))
	}
}

func (c *Checker) checkStore() {
	if c.o.Store == nil {
		return
	}
	_, _, err := c.o.Store.Load(context.Background())
	if errors.Is(err, states.ErrUnreadable) && (c.o.Unreadable == nil || !c.o.Unreadable()) {
		c.violate("the store does not load, and the test did not break it: %v", err)
	}
}
