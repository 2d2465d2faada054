package spec_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/engine/enginetest"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
)

// rig is the world of the regression tests: the pieces of the Manager
// suite's world, without the sim, for replaying one sequence by hand.
type rig struct {
	t     *testing.T
	clock *enginetest.Clock
	srv   *oauthtest.Server
	wire  *enginetest.Wire
	home  string
	store *enginetest.FaultStore
	file  *storage.File
	logs  *enginetest.Logs
	m     *engine.Manager

	// rfc6749 makes the manager speak plain RFC 6749 (form-encoded,
	// expires_in) instead of the Codex protocol.
	rfc6749 bool
}

func newRig(t *testing.T) *rig {
	t.Helper()
	clock := enginetest.NewClock(suiteStart)
	srv := oauthtest.NewServer(oauthtest.WithClock(clock.Now))
	t.Cleanup(srv.Close)
	home := t.TempDir()
	t.Cleanup(func() { _, _ = storage.NewEphemeral(home).Delete(context.Background()) })
	real, err := storage.Open(storage.Options{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	stats := func() enginetest.ServerStats {
		s := srv.Stats()
		return enginetest.ServerStats{Requests: s.Requests, Redemptions: s.Redemptions}
	}
	return &rig{t: t, clock: clock, srv: srv, home: home,
		wire:  enginetest.NewWire(srv.HTTPClient().Transport, stats),
		store: enginetest.NewFaultStore(real),
		file:  storage.NewFile(home, nil),
		logs:  enginetest.NewLogs(),
	}
}

// start builds the manager, closing the one before if any.
func (r *rig) start() {
	r.t.Helper()
	if r.m != nil {
		r.m.Close()
	}
	p := r.srv.CodexProfile()
	if r.rfc6749 {
		p = r.srv.RFC6749Profile()
	}
	m, err := engine.New(context.Background(), engine.Config{
		Store:       r.store,
		Profile:     &p,
		HTTPClient:  &http.Client{Transport: r.wire},
		Clock:       r.clock,
		Logger:      r.logs.Logger(),
		LockTimeout: lockTimeout,
		HostTimeout: hostTimeout,
	})
	if err != nil {
		r.t.Fatalf("New: %v", err)
	}
	r.m = m
	r.t.Cleanup(func() { m.Close() })
}

// login signs in with new managed tokens and returns them.
func (r *rig) login() oauthtest.TokenSet {
	r.t.Helper()
	ts := r.srv.Issue(mainAccount)
	if err := r.m.LoginTokens(ctx, ts.IDToken, ts.AccessToken, ts.RefreshToken); err != nil {
		r.t.Fatalf("LoginTokens: %v", err)
	}
	return ts
}

// stored returns the refresh token auth.json holds.
func (r *rig) stored() string {
	r.t.Helper()
	rec, _, err := r.file.Load(ctx)
	if err != nil {
		r.t.Fatalf("reading auth.json: %v", err)
	}
	return rec.Tokens.RefreshToken.Reveal()
}

// state returns the manager's state.
func (r *rig) state() states.State { return r.m.Snapshot().State }

// want fails the test unless the manager is in state s.
func (r *rig) want(s states.State) {
	r.t.Helper()
	if got := r.state(); got != s {
		r.t.Fatalf("state %s, want %s (rules so far: %v)", got, s, r.rules())
	}
}

// rules returns the rules fired so far, from the log.
func (r *rig) rules() []string {
	var out []string
	for _, t := range r.logs.Transitions() {
		out = append(out, t.Rule)
	}
	return out
}

// noReplays fails the test if this process presented a refresh token it
// had seen rotated away.
func (r *rig) noReplays() {
	r.t.Helper()
	if n := len(r.wire.Replays()); n > 0 {
		r.t.Fatalf("the token server saw %d refresh token(s) this process had seen rotated away "+
			"(rules: %v)", n, r.rules())
	}
}

// later moves the clock on by d.
func (r *rig) later(d time.Duration) {
	r.t.Helper()
	if err := r.clock.Advance(d); err != nil {
		r.t.Fatal(err)
	}
}
