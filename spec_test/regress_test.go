package spec_test

import (
	"errors"
	"testing"
	"time"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
)

// Regression tests: sequences the Manager suite found, shrunk by rapid and
// replayed here by hand, so that each one stays fixed (or, when it is a
// known bug, says so).

// A burst as the suite makes one: a refresh held at the token server, and
// token requests made meanwhile. Every one joins the refresh, and exactly
// one redemption happens.
func TestRegressionBurstJoinsOneRedemption(t *testing.T) {
	r := newRig(t)
	r.start()
	ts := r.login()

	arrived := r.wire.Hold()
	done := make(chan error, 1)
	go func() { done <- r.m.Refresh(ctx) }()
	<-arrived
	results := make(chan string, 3)
	for range 3 {
		go func() {
			tok, err := r.m.Token(ctx)
			if err != nil {
				tok = "error: " + err.Error()
			}
			results <- tok
		}()
	}
	deadline := time.Now().Add(waitLimit)
	for joined(r.logs.Transitions()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the token requests did not join the refresh (rules: %v)", r.rules())
		}
		time.Sleep(100 * time.Microsecond)
	}
	r.wire.Release()
	if err := <-done; err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	for range 3 {
		if tok := <-results; tok == ts.AccessToken || tok == "" {
			t.Errorf("a caller who joined the refresh got %q, want the new access token", tok)
		}
	}
	if n := r.wire.Count(); n != 1 {
		t.Errorf("%d redemptions, want 1", n)
	}
	if n := r.wire.MaxInFlight(); n != 1 {
		t.Errorf("%d redemptions in flight at once, want 1", n)
	}
}

// After a save fails, the rotated refresh token lives in memory only. If
// the provider then refuses that token for good, a reload finds the store
// unchanged, holding the token this process had already redeemed, and
// adopts it as "a different credential": the next refresh presents a token
// the provider has seen used (a reuse alarm, at some providers the end of
// the whole token family).
//
// Found by TestManagerMatchesModel as: login; 401 for the current token
// with a failing save; refresh refused for good, then reload; refresh.
func TestRegressionReloadRevivesRetiredToken(t *testing.T) {
	r := newRig(t)
	r.start()
	ts := r.login()

	// A refresh whose save fails: the new refresh token is in memory only.
	r.store.FailNextSave(errors.New("disk full"))
	if err := r.m.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if got := r.stored(); got != ts.RefreshToken {
		t.Fatalf("auth.json should still hold the first refresh token")
	}

	// The provider refuses the rotated token for good.
	r.srv.Inject(oauthtest.Reject(oauth.CodeRefreshTokenExpired))
	_ = r.m.Refresh(ctx)
	r.want(states.FailedPermanent)

	// The store is as this process last saw it: nothing newer is there.
	if err := r.m.Reload(ctx); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	r.want(states.FailedPermanent)
	_ = r.m.Refresh(ctx)
	r.noReplays()
}

// Another program that does not take the store lock (an older Codex)
// re-saves auth.json, holding the refresh token this process is redeeming,
// just before this process saves the rotated one. The save conflicts and
// the rotated token lives in memory; the next re-read sees the store
// changed and adopts its refresh token, which this process has already
// redeemed, and the refresh after that presents it.
//
// Found by TestManagerMatchesModel while its conflicting writer re-saved
// the stored record (it now signs in with new tokens instead).
func TestRegressionConflictAdoptsRetiredToken(t *testing.T) {
	r := newRig(t)
	r.start()
	r.login()

	r.store.BeforeNextSave(func() {
		rec, _, err := r.file.Load(ctx)
		if err != nil {
			t.Errorf("other program: %v", err)
			return
		}
		rec.LastRefresh = r.clock.Now().Add(-7 * time.Second)
		if _, err := r.file.Save(ctx, rec, states.AnyVersion); err != nil {
			t.Errorf("other program: %v", err)
		}
	})
	if err := r.m.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if !r.m.Snapshot().Unsaved {
		t.Fatalf("the save should have conflicted")
	}
	// The first refresh re-reads and adopts what the store holds; the
	// second redeems it.
	_ = r.m.Refresh(ctx)
	_ = r.m.Refresh(ctx)
	r.noReplays()
}

// Host-managed tokens live in the process's memory, where they beat what
// the file holds. A login with an API key (or with managed tokens)
// afterwards saves to the file and leaves the memory entry, so the next
// re-read (a reload, a refresh's re-read under the lock, a restart of the
// manager in the same process) finds the old host-managed tokens instead of
// the credential just signed in with.
func TestRegressionLoginLeavesHostTokensInMemory(t *testing.T) {
	r := newRig(t)
	r.start()
	ts := r.srv.Issue(mainAccount)
	if err := r.m.LoginExternal(ctx, ts.IDToken, ts.AccessToken); err != nil {
		t.Fatalf("LoginExternal: %v", err)
	}
	if err := r.m.LoginAPIKey(ctx, "sk-test-regression-key"); err != nil {
		t.Fatalf("LoginAPIKey: %v", err)
	}
	r.want(states.APIKey)
	if err := r.m.Reload(ctx); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	r.want(states.APIKey)
}

// An RFC 6749 provider says how long new tokens live in expires_in, which
// the engine counts from the moment of the answer, to the nanosecond. After
// a restart, the expiry comes from the stored access token's exp claim, in
// whole seconds: auth.json keeps no expiry of its own. So the expiry a
// restart reads is the one before it, cut to the second, never later.
//
// Found by a long run of TestManagerMatchesModel (the sim had kept the
// fraction across the restart) as: start on an RFC 6749 provider; a refresh
// at a moment with a fraction of a second; restart.
func TestRegressionExpiryAfterRestartIsTheStoredExp(t *testing.T) {
	r := newRig(t)
	r.rfc6749 = true
	r.start()
	r.login()
	r.later(4750 * time.Millisecond)
	if err := r.m.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	before := r.m.Snapshot().Expiry
	if before.Truncate(time.Second).Equal(before) {
		t.Fatalf("expiry %v has no fraction of a second; the test needs one", before)
	}
	r.start()
	if after := r.m.Snapshot().Expiry; !after.Equal(before.Truncate(time.Second)) {
		t.Fatalf("expiry after a restart %v, want %v (the stored exp)", after, before.Truncate(time.Second))
	}
}

// The same cut to the second applies when tokens come from another process:
// a refresh that finds them in auth.json adopts them with the stored exp,
// not with the other process's expires_in.
//
// Found by a long run of TestManagerMatchesModel (the sim copied the other
// process's record with the fraction) as: start on an RFC 6749 provider;
// another process refreshes at a moment with a fraction of a second; this
// process refreshes.
func TestRegressionAdoptedTokensKeepTheStoredExp(t *testing.T) {
	r := newRig(t)
	r.rfc6749 = true
	r.start()
	r.login()
	r.later(4750 * time.Millisecond)

	store, err := storage.Open(storage.Options{Home: r.home})
	if err != nil {
		t.Fatal(err)
	}
	p := r.srv.RFC6749Profile()
	other, err := engine.New(ctx, engine.Config{Store: store, Profile: &p,
		HTTPClient: r.srv.HTTPClient(), Clock: r.clock, LockTimeout: lockTimeout})
	if err != nil {
		t.Fatalf("New (other process): %v", err)
	}
	defer other.Close()
	if err := other.Refresh(ctx); err != nil {
		t.Fatalf("Refresh (other process): %v", err)
	}
	theirs := other.Snapshot().Expiry
	if theirs.Truncate(time.Second).Equal(theirs) {
		t.Fatalf("expiry %v has no fraction of a second; the test needs one", theirs)
	}

	if err := r.m.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if n := r.srv.Stats().Redemptions; n != 1 {
		t.Fatalf("%d redemptions, want 1: this process should have adopted the other's tokens", n)
	}
	if ours := r.m.Snapshot().Expiry; !ours.Equal(theirs.Truncate(time.Second)) {
		t.Fatalf("adopted expiry %v, want %v (the stored exp)", ours, theirs.Truncate(time.Second))
	}
}
