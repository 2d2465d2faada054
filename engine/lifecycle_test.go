package engine_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/effects/effectstest"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// lifecycleRun is what a run of the full lifecycle saw: every secret that
// existed during it and every error the manager returned, for the logging
// test to look for.
type lifecycleRun struct {
	secrets     []string
	errs        []error
	transitions []engine.Transition
}

// runLifecycle drives one credential through its whole life with the real
// file store and token server, checking after every step the state, the
// token served, auth.json on disk, the server's counters and the rules seen
// through Subscribe:
//
//	logged out → load → fresh → stale → refresh → 401 → recovery → stale 401
//	→ permanent failure → login → logout
func runLifecycle(t *testing.T, r *rig) lifecycleRun {
	ctx := context.Background()
	var run lifecycleRun
	noteErr := func(err error) error {
		if err != nil {
			run.errs = append(run.errs, err)
		}
		return err
	}
	ignore := cmpopts.IgnoreFields(engine.Snapshot{}, "Generation", "Store")

	m := r.start(r.config())
	rules := watch(t, m)
	if s := m.Snapshot(); s.State != states.LoggedOut || s.Store.Kind != "file" {
		t.Fatalf("empty home: snapshot %+v, want logged_out in the file store", s)
	}
	if _, err := m.Token(ctx); !errors.Is(noteErr(err), engine.ErrLoggedOut) {
		t.Fatalf("Token while logged out: %v, want ErrLoggedOut", err)
	}
	if diff := cmp.Diff([]string{"token_logged_out"}, rules.next(t, 1)); diff != "" {
		t.Errorf("logged out: rules (-want +got):\n%s", diff)
	}

	// Load: another program signs in and writes auth.json; a reload finds it.
	ts1 := r.issue(mainAccount)
	run.secrets = append(run.secrets, secretsOf(ts1)...)
	r.writeAuth(ts1)
	if err := noteErr(m.Reload(ctx)); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if diff := cmp.Diff([]string{"load_fresh"}, rules.next(t, 1)); diff != "" {
		t.Errorf("load: rules (-want +got):\n%s", diff)
	}
	want := engine.Snapshot{
		State: states.Fresh, Mode: states.ModeManaged,
		Email: mainAccount.Email, Plan: states.PlanPro, UserID: mainAccount.UserID,
		AccountID: mainAccount.AccountID,
		Expiry:    ts1.AccessExpiry, StaleAt: ts1.AccessExpiry.Add(-5 * time.Minute),
		LastRefresh: mgrStart,
	}
	if diff := cmp.Diff(want, m.Snapshot(), ignore); diff != "" {
		t.Errorf("after load: snapshot (-want +got):\n%s", diff)
	}
	gen := m.Snapshot().Generation

	// Fresh: the token is served from memory, without any request.
	if got, err := m.Token(ctx); err != nil || got != ts1.AccessToken {
		t.Fatalf("fresh: Token = %s, %v; want the loaded access token", fingerprint(got), err)
	}
	if n := r.requests(); n != 0 {
		t.Fatalf("fresh: the token server saw %d requests, want 0", n)
	}

	// Stale: the timer set at load fires at the stale time.
	r.clock.Advance(56 * time.Minute)
	if diff := cmp.Diff([]string{"woke_turned_stale"}, rules.next(t, 1)); diff != "" {
		t.Errorf("stale: rules (-want +got):\n%s", diff)
	}
	if s := m.Snapshot(); s.State != states.Stale {
		t.Fatalf("after the stale time: state %s, want stale", s.State)
	}

	// Refresh: the next Token redeems the refresh token once, saves the
	// rotated tokens, then serves the new access token.
	a2, err := m.Token(ctx)
	if noteErr(err) != nil {
		t.Fatalf("stale: Token: %v", err)
	}
	if diff := cmp.Diff([]string{"token_stale_refresh", "reread_unchanged", "refresh_succeeded",
		"persisted_refresh", "token_fresh"}, rules.next(t, 5)); diff != "" {
		t.Errorf("refresh: rules (-want +got):\n%s", diff)
	}
	stored := r.mustAuth()
	run.secrets = append(run.secrets, stored.IDToken, stored.AccessToken, stored.RefreshToken)
	switch {
	case a2 == ts1.AccessToken:
		t.Fatal("refresh: Token still serves the old access token")
	case stored.AccessToken != a2:
		t.Fatal("refresh: auth.json does not hold the access token served")
	case stored.RefreshToken == ts1.RefreshToken || stored.RefreshToken == "":
		t.Fatal("refresh: auth.json does not hold a rotated refresh token")
	case stored.IDToken == ts1.IDToken:
		t.Fatal("refresh: auth.json still holds the old id token")
	}
	if doc, _ := r.readAuth(); doc.AuthMode != "chatgpt" || !sameInstant(doc.LastRefresh, r.clock.Now()) {
		t.Errorf("refresh: auth.json auth_mode %q, last_refresh %q; want chatgpt, %s",
			doc.AuthMode, doc.LastRefresh, r.clock.Now())
	}
	if st := r.srv.Stats(); st.Redemptions != 1 || st.Requests != 1 {
		t.Fatalf("refresh: server stats %+v, want one request and one redemption", st)
	}
	s := m.Snapshot()
	if s.State != states.Fresh || !s.LastRefresh.Equal(r.clock.Now()) || s.Generation <= gen {
		t.Fatalf("refresh: snapshot %+v, want fresh, refreshed now, a new generation", s)
	}
	gen = s.Generation

	// 401: the API refuses the current token; recovery redeems once and
	// says to retry with the new token.
	d := m.Observe(ctx, a2, http.StatusUnauthorized, nil)
	noteErr(d.Err)
	if d.Action != engine.Retry || d.Token == "" || d.Token == a2 {
		t.Fatalf("401 for the current token: %v (%v), want retry with a new token", d.Action, d.Err)
	}
	a3 := d.Token
	if diff := cmp.Diff([]string{"unauthorized_refresh", "reread_unchanged", "refresh_succeeded",
		"persisted_refresh"}, rules.next(t, 4)); diff != "" {
		t.Errorf("recovery: rules (-want +got):\n%s", diff)
	}
	stored = r.mustAuth()
	run.secrets = append(run.secrets, stored.IDToken, stored.AccessToken, stored.RefreshToken)
	if stored.AccessToken != a3 {
		t.Fatal("recovery: auth.json does not hold the token to retry with")
	}
	if got, err := m.Token(ctx); err != nil || got != a3 {
		t.Fatalf("after recovery: Token = %s, %v; want the recovered token", fingerprint(got), err)
	}
	if st := r.srv.Stats(); st.Redemptions != 2 {
		t.Fatalf("recovery: %d redemptions, want 2", st.Redemptions)
	}

	// A late 401 for the replaced token: retry with the current one, no
	// redemption.
	d = m.Observe(ctx, a2, http.StatusUnauthorized, nil)
	if d.Action != engine.Retry || d.Token != a3 {
		t.Fatalf("401 for a replaced token: %v (%v), want retry with the current token", d.Action, d.Err)
	}
	if diff := cmp.Diff([]string{"unauthorized_old_generation"}, rules.next(t, 1)); diff != "" {
		t.Errorf("stale 401: rules (-want +got):\n%s", diff)
	}
	if st := r.srv.Stats(); st.Redemptions != 2 || st.Requests != 2 {
		t.Fatalf("stale 401: server stats %+v, want nothing new", st)
	}
	if s := m.Snapshot(); s.Generation <= gen {
		t.Fatalf("recovery did not start a new generation")
	}

	// The API refuses the recovered token too: refreshing once more would
	// not help, so the manager gives up on the request without a redemption.
	d = m.Observe(ctx, a3, http.StatusUnauthorized, nil)
	if d.Action != engine.GiveUp || !errors.Is(d.Err, engine.ErrRefusedAgain) {
		t.Fatalf("401 for the recovered token: %v (%v), want give up with ErrRefusedAgain", d.Action, d.Err)
	}
	if diff := cmp.Diff([]string{"unauthorized_again"}, rules.next(t, 1)); diff != "" {
		t.Errorf("401 again: rules (-want +got):\n%s", diff)
	}
	if st := r.srv.Stats(); st.Redemptions != 2 || st.Requests != 2 {
		t.Fatalf("401 again: server stats %+v, want nothing new", st)
	}

	// Permanent failure: the provider revoked the session; the next 401,
	// once the cooldown has passed, fails for good, and nothing is written.
	r.clock.Advance(transitions.DefaultRecoveryCooldown)
	if !r.srv.Revoke(stored.RefreshToken) {
		t.Fatal("the server does not know the stored refresh token")
	}
	before, _ := r.readAuth()
	d = m.Observe(ctx, a3, http.StatusUnauthorized, nil)
	noteErr(d.Err)
	var perm *engine.PermanentError
	if d.Action != engine.GiveUp || !errors.As(d.Err, &perm) || perm.Reason != states.ReasonRevoked {
		t.Fatalf("401 after revocation: %v (%v), want give up with reason revoked", d.Action, d.Err)
	}
	if diff := cmp.Diff([]string{"unauthorized_refresh", "reread_unchanged", "refresh_rejected"},
		rules.next(t, 3)); diff != "" {
		t.Errorf("permanent failure: rules (-want +got):\n%s", diff)
	}
	if s := m.Snapshot(); s.State != states.FailedPermanent || s.Failure != states.ReasonRevoked {
		t.Fatalf("permanent failure: snapshot %+v", s)
	}
	if after, _ := r.readAuth(); !cmp.Equal(before, after) {
		t.Error("permanent failure: auth.json changed")
	}
	requests := r.requests()
	if _, err := m.Token(ctx); !errors.Is(noteErr(err), engine.ErrPermanent) {
		t.Fatalf("Token after the permanent failure: %v, want ErrPermanent", err)
	}
	if n := r.requests(); n != requests {
		t.Fatalf("Token after the permanent failure sent %d requests", n-requests)
	}
	if diff := cmp.Diff([]string{"token_failed"}, rules.next(t, 1)); diff != "" {
		t.Errorf("failed: rules (-want +got):\n%s", diff)
	}

	// Login: a person signs in again, to another account.
	ts4 := r.issue(otherAccount)
	run.secrets = append(run.secrets, secretsOf(ts4)...)
	if err := noteErr(m.LoginTokens(ctx, ts4.IDToken, ts4.AccessToken, ts4.RefreshToken)); err != nil {
		t.Fatalf("LoginTokens: %v", err)
	}
	if diff := cmp.Diff([]string{"login_fresh", "persisted"}, rules.next(t, 2)); diff != "" {
		t.Errorf("login: rules (-want +got):\n%s", diff)
	}
	stored = r.mustAuth()
	wantStored := authTokens{IDToken: ts4.IDToken, AccessToken: ts4.AccessToken,
		RefreshToken: ts4.RefreshToken, AccountID: &otherAccount.AccountID}
	if diff := cmp.Diff(wantStored, stored); diff != "" {
		t.Errorf("login: auth.json tokens (-want +got):\n%s", diff)
	}
	if got, err := m.Token(ctx); err != nil || got != ts4.AccessToken {
		t.Fatalf("after login: Token = %s, %v; want the new login's token", fingerprint(got), err)
	}
	want = engine.Snapshot{
		State: states.Fresh, Mode: states.ModeManaged,
		Email: otherAccount.Email, Plan: states.PlanTeam, UserID: otherAccount.UserID,
		AccountID: otherAccount.AccountID,
		Expiry:    ts4.AccessExpiry, StaleAt: ts4.AccessExpiry.Add(-5 * time.Minute),
		LastRefresh: r.clock.Now(),
	}
	if diff := cmp.Diff(want, m.Snapshot(), ignore); diff != "" {
		t.Errorf("after login: snapshot (-want +got):\n%s", diff)
	}

	// Logout: every store is cleared.
	removals, err := m.Logout(ctx)
	if noteErr(err) != nil {
		t.Fatalf("Logout: %v", err)
	}
	if diff := cmp.Diff([]string{"logout", "stores_cleared"}, rules.next(t, 2)); diff != "" {
		t.Errorf("logout: rules (-want +got):\n%s", diff)
	}
	removedFile := false
	for _, rm := range removals {
		removedFile = removedFile || (rm.Removed && rm.Err == nil)
	}
	if !removedFile {
		t.Errorf("Logout reported no removal: %+v", removals)
	}
	if _, ok := r.readAuth(); ok {
		t.Error("auth.json still exists after logout")
	}
	if _, err := m.Token(ctx); !errors.Is(noteErr(err), engine.ErrLoggedOut) {
		t.Fatalf("Token after logout: %v, want ErrLoggedOut", err)
	}
	if diff := cmp.Diff([]string{"token_logged_out"}, rules.next(t, 1)); diff != "" {
		t.Errorf("logged out again: rules (-want +got):\n%s", diff)
	}
	if s := m.Snapshot(); s.State != states.LoggedOut || s.Mode != states.ModeNone || s.Email != "" {
		t.Fatalf("after logout: snapshot %+v", s)
	}

	// Nothing happened that the test did not expect. Close delivers every
	// transition still queued before it returns.
	m.Close()
	if extra := rules.rest(); len(extra) != 0 {
		t.Errorf("unexpected transitions: %v", extra)
	}
	if st := r.srv.Stats(); st.ReuseAttempts != 0 {
		t.Errorf("the server saw %d reuse attempts", st.ReuseAttempts)
	}
	run.transitions = rules.transitions()
	return run
}

func sameInstant(rfc3339 string, want time.Time) bool {
	got, err := time.Parse(time.RFC3339Nano, rfc3339)
	return err == nil && got.Equal(want)
}

func TestManagerLifecycle(t *testing.T) {
	runLifecycle(t, newRig(t))
}

// A provider that does not rotate refresh tokens sends none back: the stored
// refresh token must stay, next to the new access token.
func TestManagerRefreshWithoutRotationKeepsRefreshToken(t *testing.T) {
	r := newRig(t, oauthtest.WithoutRotation())
	ts := r.issue(mainAccount)
	r.writeAuth(ts)
	m := r.start(r.config())

	d := m.Observe(context.Background(), ts.AccessToken, http.StatusUnauthorized, nil)
	if d.Action != engine.Retry || d.Token == ts.AccessToken {
		t.Fatalf("401: %v (%v), want retry with a new token", d.Action, d.Err)
	}
	stored := r.mustAuth()
	if stored.RefreshToken != ts.RefreshToken || stored.AccessToken != d.Token {
		t.Fatal("auth.json: want the same refresh token and the new access token")
	}
}

// TestManagerSubscribe: each transition arrives as a structured value —
// when, which rule, which event, from and to which state, which commands,
// which generation — in order; after unsubscribing, none arrives.
func TestManagerSubscribe(t *testing.T) {
	r := newRig(t)
	ts := r.issue(mainAccount)
	r.writeAuth(ts)
	m := r.start(r.config())
	rules := watch(t, m)
	var late atomic.Int32
	unsubscribe := m.Subscribe(func(engine.Transition) { late.Add(1) })
	gen := m.Snapshot().Generation

	r.clock.Advance(time.Minute)
	if d := m.Observe(context.Background(), ts.AccessToken, http.StatusUnauthorized, nil); d.Action != engine.Retry {
		t.Fatalf("401: %v (%v)", d.Action, d.Err)
	}
	rules.next(t, 4)
	at := r.clock.Now()
	want := []engine.Transition{
		{At: at, Rule: "unauthorized_refresh", Event: states.KindUnauthorized,
			From: states.Fresh, To: states.Refreshing,
			Commands: []effects.Kind{effects.KindLockAndReread}, Generation: gen},
		{At: at, Rule: "reread_unchanged", Event: states.KindStoreReread,
			From: states.Refreshing, To: states.Refreshing,
			Commands: []effects.Kind{effects.KindRedeemRefreshToken}, Generation: gen},
		{At: at, Rule: "refresh_succeeded", Event: states.KindRefreshSucceeded,
			From: states.Refreshing, To: states.Refreshing,
			Commands: []effects.Kind{effects.KindPersistRecord}, Generation: gen + 1},
		{At: at, Rule: "persisted_refresh", Event: states.KindPersisted,
			From: states.Refreshing, To: states.Fresh,
			Commands: []effects.Kind{effects.KindReleaseLock, effects.KindNotifyObservers,
				effects.KindWakeAt},
			Generation: gen + 1},
	}
	if diff := cmp.Diff(want, rules.transitions()); diff != "" {
		t.Errorf("transitions (-want +got):\n%s", diff)
	}

	eventually(t, "the second subscriber saw the refresh", func() bool { return late.Load() == 4 })
	unsubscribe()
	if _, err := m.Logout(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if n := late.Load(); n != 4 {
		t.Errorf("the unsubscribed callback saw %d transitions, want none after unsubscribing", n-4)
	}
}

// The first subscriber, given in the Config, sees the load that New does.
func TestOnTransitionSeesTheInitialLoad(t *testing.T) {
	store := effectstest.NewMemStore()
	store.Put(states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret("sk-test")})
	got := make(chan engine.Transition, 4)
	m, err := engine.New(context.Background(), engine.Config{
		Store: store, Endpoint: effectstest.EndpointFunc(nil),
		OnTransition: func(tr engine.Transition) { got <- tr },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	select {
	case tr := <-got:
		if tr.Rule != "load_api_key" || tr.From != states.LoggedOut || tr.To != states.APIKey {
			t.Errorf("first transition = %s %v -> %v; want load_api_key logged_out -> api_key",
				tr.Rule, tr.From, tr.To)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnTransition never saw the initial load")
	}
}
