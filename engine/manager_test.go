package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/effects/effectstest"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
)

// countRules counts how often each rule fired.
func countRules(ts []engine.Transition) map[string]int {
	out := map[string]int{}
	for _, tr := range ts {
		out[tr.Rule]++
	}
	return out
}

// TestManagerCoalescesConcurrentCallers: a thousand callers, half asking
// for a token and half reporting a 401 for the current one, all while a
// refresh is due, share one redemption and all get its token.
func TestManagerCoalescesConcurrentCallers(t *testing.T) {
	const callers = 1000
	r := newRig(t)
	ts := r.issue(mainAccount)
	r.writeAuth(ts)
	m := r.start(r.config())
	rules := watch(t, m)

	r.clock.Advance(56 * time.Minute) // past the stale time: a refresh is due
	r.gate.hold()

	ctx := context.Background()
	start := make(chan struct{})
	got := make([]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if i%2 == 0 {
				got[i], errs[i] = m.Token(ctx)
				return
			}
			d := m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil)
			if d.Action != engine.Retry {
				errs[i] = fmt.Errorf("Observe: %v: %v", d.Action, d.Err)
			}
			got[i] = d.Token
		}()
	}
	began := time.Now()
	close(start)

	// One caller started the refresh, which is held at the token server;
	// every other caller must have joined it before it is let through.
	r.gate.awaitArrival(t)
	eventually(t, "every caller waits for the one refresh", func() bool {
		n := countRules(rules.transitions())
		return n["token_wait"]+n["unauthorized_wait"] == callers-1
	})
	t.Logf("all waiting after %v", time.Since(began))
	r.gate.release()
	wg.Wait()
	t.Logf("%d callers served by one refresh in %v", callers, time.Since(began))

	stored := r.mustAuth()
	if stored.AccessToken == ts.AccessToken {
		t.Fatal("auth.json still holds the old access token")
	}
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if got[i] != stored.AccessToken {
			t.Fatalf("caller %d got %s, want the refreshed token %s",
				i, fingerprint(got[i]), fingerprint(stored.AccessToken))
		}
	}
	if st := r.srv.Stats(); st.Requests != 1 || st.Redemptions != 1 || st.ReuseAttempts != 0 {
		t.Fatalf("server stats %+v, want exactly one request and one redemption", st)
	}
	n := countRules(rules.transitions())
	starts := n["token_refresh_due"] + n["token_stale_refresh"] + n["unauthorized_refresh"]
	if starts != 1 || n["refresh_succeeded"] != 1 || n["persisted_refresh"] != 1 {
		t.Fatalf("rules fired %v, want one refresh started and finished", n)
	}
}

// TestManagerCallerGivesUpRefreshGoesOn: a caller whose context ends while
// a refresh is in flight gets ctx.Err() at once; the refresh is not
// aborted, and the callers still waiting get its token.
func TestManagerCallerGivesUpRefreshGoesOn(t *testing.T) {
	r := newRig(t)
	ts := r.issue(mainAccount)
	r.writeAuth(ts)
	m := r.start(r.config())
	rules := watch(t, m)

	r.gate.hold()
	gaveUp, cancel := context.WithCancel(context.Background())
	defer cancel()
	quitter := make(chan error, 1)
	go func() {
		d := m.Observe(gaveUp, ts.AccessToken, http.StatusUnauthorized, nil)
		quitter <- d.Err
	}()
	r.gate.awaitArrival(t)

	type result struct {
		tok string
		err error
	}
	patient := make(chan result, 1)
	go func() {
		tok, err := m.Token(context.Background())
		patient <- result{tok, err}
	}()
	rules.until(t, "token_wait")

	cancel()
	select {
	case err := <-quitter:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the caller that gave up got %v, want context.Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the caller that gave up is still waiting")
	}
	if s := m.Snapshot(); s.State != states.Refreshing {
		t.Fatalf("after a caller gave up: state %s, want the refresh still running", s.State)
	}

	r.gate.release()
	res := <-patient
	stored := r.mustAuth()
	if res.err != nil || res.tok != stored.AccessToken || res.tok == ts.AccessToken {
		t.Fatalf("the waiting caller got %s, %v; want the refreshed token", fingerprint(res.tok), res.err)
	}
	if st := r.srv.Stats(); st.Redemptions != 1 {
		t.Fatalf("%d redemptions, want 1", st.Redemptions)
	}
}

// TestManagerKeepsNoCallerContext: cancelling every context ever passed to
// the manager, New's included, while the refresh is in flight changes
// nothing about the refresh: it completes and the next Token is served
// from fresh without another request.
func TestManagerKeepsNoCallerContext(t *testing.T) {
	r := newRig(t)
	ts := r.issue(mainAccount)
	r.writeAuth(ts)

	newCtx, cancelNew := context.WithCancel(context.Background())
	m, err := engine.New(newCtx, r.config())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cancelNew()
	rules := watch(t, m)

	// The timer set at load, under New's context, still fires.
	r.clock.Advance(56 * time.Minute)
	rules.until(t, "woke_turned_stale")

	r.gate.hold()
	type call struct {
		name string
		do   func(ctx context.Context) error
	}
	calls := []call{
		{"Token", func(ctx context.Context) error { _, err := m.Token(ctx); return err }},
		{"Observe", func(ctx context.Context) error {
			return m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil).Err
		}},
		{"Refresh", m.Refresh},
	}
	var cancels []context.CancelFunc
	errs := make(chan error, len(calls))
	for i, c := range calls {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		go func() { errs <- fmt.Errorf("%s: %w", c.name, c.do(ctx)) }()
		if i == 0 {
			r.gate.awaitArrival(t)
		}
	}
	eventually(t, "every call waits", func() bool {
		n := countRules(rules.transitions())
		return n["unauthorized_wait"] == 1 && n["refresh_wait"] == 1
	})
	for _, cancel := range cancels {
		cancel()
	}
	for range calls {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("%v, want context.Canceled", err)
		}
	}

	r.gate.release()
	rules.until(t, "persisted_refresh")
	stored := r.mustAuth()
	got, err := m.Token(context.Background())
	if err != nil || got != stored.AccessToken || got == ts.AccessToken {
		t.Fatalf("Token after the abandoned refresh: %s, %v; want the refreshed token", fingerprint(got), err)
	}
	if s := m.Snapshot(); s.State != states.Fresh {
		t.Fatalf("state %s, want fresh", s.State)
	}
	if st := r.srv.Stats(); st.Requests != 1 || st.Redemptions != 1 {
		t.Fatalf("server stats %+v, want one request", st)
	}
}

// TestManagerStaleUnauthorized: a 401 for a token that was already replaced
// is answered with the current token and redeems nothing — whether it
// arrives after the refresh or while it is still running.
func TestManagerStaleUnauthorized(t *testing.T) {
	r := newRig(t)
	ts := r.issue(mainAccount)
	r.writeAuth(ts)
	m := r.start(r.config())
	ctx := context.Background()

	first := m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil)
	if first.Action != engine.Retry || first.Token == ts.AccessToken {
		t.Fatalf("401 for the current token: %v (%v)", first.Action, first.Err)
	}
	before := r.srv.Stats()
	for i := range 3 {
		d := m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil)
		if d.Action != engine.Retry || d.Token != first.Token {
			t.Fatalf("late 401 #%d: %v (%v), want retry with the current token", i, d.Action, d.Err)
		}
	}
	d := m.Observe(ctx, "a token this manager never issued", http.StatusUnauthorized, nil)
	if d.Action != engine.Retry || d.Token != first.Token {
		t.Fatalf("401 for an unknown token: %v (%v), want retry with the current token",
			d.Action, d.Err)
	}
	if after := r.srv.Stats(); after != before {
		t.Fatalf("late 401s reached the token server: %+v → %+v", before, after)
	}

	// Statuses other than 401 change nothing.
	for _, status := range []int{http.StatusOK, http.StatusForbidden, http.StatusTooManyRequests, 500} {
		if d := m.Observe(ctx, first.Token, status, nil); d.Action != engine.Proceed {
			t.Errorf("status %d: %v, want proceed", status, d.Action)
		}
	}
	if after := r.srv.Stats(); after != before {
		t.Fatalf("other statuses reached the token server")
	}
}

// TestManagerPermanentFailure: once the provider refuses the refresh token
// for good, nothing the manager does on its own touches the network again;
// only a login, a logout or a reload that finds a different credential
// leaves the failure.
func TestManagerPermanentFailure(t *testing.T) {
	ctx := context.Background()
	fail := func(t *testing.T) (*rig, *engine.Manager) {
		r := newRig(t)
		ts := r.issue(mainAccount)
		r.writeAuth(ts)
		m := r.start(r.config())
		r.srv.Expire(ts.RefreshToken)
		d := m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil)
		var perm *engine.PermanentError
		if d.Action != engine.GiveUp || !errors.As(d.Err, &perm) || perm.Reason != states.ReasonExpired {
			t.Fatalf("401 with an expired refresh token: %v (%v), want a permanent failure", d.Action, d.Err)
		}
		if !errors.Is(d.Err, engine.ErrPermanent) || !strings.Contains(d.Err.Error(), "sign in") {
			t.Fatalf("error %q: want ErrPermanent saying to sign in", d.Err)
		}
		return r, m
	}

	t.Run("sticks without network", func(t *testing.T) {
		r, m := fail(t)
		stored, _ := r.readAuth()
		requests := r.requests()
		wantPermanent := func(what string, err error) {
			t.Helper()
			var perm *engine.PermanentError
			if !errors.As(err, &perm) || perm.Reason != states.ReasonExpired {
				t.Errorf("%s: %v, want the permanent failure", what, err)
			}
		}
		for range 3 {
			_, err := m.Token(ctx)
			wantPermanent("Token", err)
			d := m.Observe(ctx, stored.Tokens.AccessToken, http.StatusUnauthorized, nil)
			wantPermanent("Observe", d.Err)
			wantPermanent("Refresh", m.Refresh(ctx))
			_, err = m.TokenSource().Token()
			wantPermanent("TokenSource", err)
		}
		r.clock.Advance(48 * time.Hour) // any timer fires
		_, err := m.Token(ctx)
		wantPermanent("Token, later", err)
		// The store still holds the same dead credential.
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		wantPermanent("Token after reload", m.Refresh(ctx))
		if s := m.Snapshot(); s.State != states.FailedPermanent || s.Failure != states.ReasonExpired {
			t.Fatalf("snapshot %+v, want failed_permanent", s)
		}
		if n := r.requests(); n != requests {
			t.Fatalf("%d requests reached the token server after the permanent failure", n-requests)
		}
		if now, _ := r.readAuth(); !cmp.Equal(stored, now) {
			t.Error("auth.json changed after the permanent failure")
		}
	})

	t.Run("until login", func(t *testing.T) {
		r, m := fail(t)
		ts := r.issue(mainAccount)
		if err := m.LoginTokens(ctx, ts.IDToken, ts.AccessToken, ts.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if got, err := m.Token(ctx); err != nil || got != ts.AccessToken {
			t.Fatalf("Token after login: %s, %v", fingerprint(got), err)
		}
	})

	t.Run("until logout", func(t *testing.T) {
		_, m := fail(t)
		if _, err := m.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Token(ctx); !errors.Is(err, engine.ErrLoggedOut) {
			t.Fatalf("Token after logout: %v, want ErrLoggedOut", err)
		}
	})

	t.Run("until a reload finds another credential", func(t *testing.T) {
		r, m := fail(t)
		ts := r.issue(otherAccount)
		r.writeAuth(ts) // another process signed in
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := m.Token(ctx); err != nil || got != ts.AccessToken {
			t.Fatalf("Token after reload: %s, %v", fingerprint(got), err)
		}
		if s := m.Snapshot(); s.State != states.Fresh || s.Failure != states.ReasonNone {
			t.Fatalf("snapshot %+v, want fresh without failure", s)
		}
	})
}

// TestManagerTransientFailure: a refresh that fails in a way that may pass
// backs off; meanwhile the old access token is served while it lasts and
// nothing is sent; once it has expired, callers get an error wrapping
// ErrTransient that says when the next attempt is due.
func TestManagerTransientFailure(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	ts := r.issue(mainAccount)
	r.writeAuth(ts)
	m := r.start(r.config())
	r.clock.Advance(56 * time.Minute)
	waitState(t, m, states.Stale)

	// The first attempt fails with a 503: the old token is still good.
	r.srv.Inject(oauthtest.Status(http.StatusServiceUnavailable))
	if got, err := m.Token(ctx); err != nil || got != ts.AccessToken {
		t.Fatalf("after a 503: Token = %s, %v; want the old access token", fingerprint(got), err)
	}
	s := m.Snapshot()
	if s.State != states.Stale || !s.RetryAt.After(r.clock.Now()) || !strings.Contains(s.LastError, "503") {
		t.Fatalf("after a 503: snapshot %+v, want stale with a backoff", s)
	}
	if n := r.requests(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}

	// During the backoff nothing is sent.
	for range 3 {
		if got, err := m.Token(ctx); err != nil || got != ts.AccessToken {
			t.Fatalf("during the backoff: Token = %s, %v", fingerprint(got), err)
		}
		if d := m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil); d.Action != engine.GiveUp ||
			!errors.Is(d.Err, engine.ErrTransient) {
			t.Fatalf("401 during the backoff: %v (%v), want give up, transient", d.Action, d.Err)
		}
	}
	if n := r.requests(); n != 1 {
		t.Fatalf("the backoff was not respected: %d requests", n)
	}

	// After the backoff the refresh is tried again; the server asks for 30
	// minutes, past the token's expiry.
	r.clock.Set(s.RetryAt.Add(time.Second))
	r.srv.Inject(oauthtest.RateLimited("1800"))
	if got, err := m.Token(ctx); err != nil || got != ts.AccessToken {
		t.Fatalf("after a 429: Token = %s, %v; want the old access token", fingerprint(got), err)
	}
	s = m.Snapshot()
	if n := r.requests(); n != 2 || s.RetryAt.Before(r.clock.Now().Add(29*time.Minute)) {
		t.Fatalf("after a 429: %d requests, retry at %v; want 2 and Retry-After honoured", n, s.RetryAt)
	}

	// The access token expires during the backoff: a transient error.
	r.clock.Set(ts.AccessExpiry.Add(time.Second))
	_, err := m.Token(ctx)
	var te *engine.TransientError
	if !errors.Is(err, engine.ErrTransient) || !errors.As(err, &te) || !te.RetryAt.Equal(s.RetryAt) {
		t.Fatalf("after expiry: Token error %v, want ErrTransient retrying at %v", err, s.RetryAt)
	}
	// The error wraps the provider's answer, for hosts that look deeper.
	var re *states.RefreshError
	if !errors.As(err, &re) || re.RetryAfter != 30*time.Minute {
		t.Fatalf("after expiry: Token error %v does not wrap the 429's RefreshError", err)
	}
	if _, err := m.TokenSource().Token(); !errors.Is(err, engine.ErrTransient) {
		t.Fatalf("TokenSource after expiry: %v, want ErrTransient", err)
	}
	if n := r.requests(); n != 2 {
		t.Fatalf("%d requests during the backoff, want none", n-2)
	}

	// Once the backoff is over the refresh succeeds.
	r.clock.Set(s.RetryAt.Add(time.Second))
	got, err := m.Token(ctx)
	if err != nil || got == ts.AccessToken || got != r.mustAuth().AccessToken {
		t.Fatalf("after the backoff: Token = %s, %v; want the refreshed token", fingerprint(got), err)
	}
	if s := m.Snapshot(); s.State != states.Fresh || !s.RetryAt.IsZero() || s.LastError != "" {
		t.Fatalf("after the backoff: snapshot %+v, want fresh and clean", s)
	}
}

// TestManagerOutsideActionsWaitForRefresh: a login, a logout or a reload
// asked for while a refresh is in flight waits for the refresh to settle and
// then happens; it is neither refused nor allowed to cut the refresh short.
func TestManagerOutsideActionsWaitForRefresh(t *testing.T) {
	tests := []struct {
		name string
		do   func(*rig, *engine.Manager) error
		want states.State
		// stored checks auth.json afterwards.
		stored func(t *testing.T, r *rig)
	}{
		{
			name: "login_api_key",
			do: func(_ *rig, m *engine.Manager) error {
				return m.LoginAPIKey(context.Background(), "sk-test-outside-login")
			},
			want: states.APIKey,
			stored: func(t *testing.T, r *rig) {
				if doc, ok := r.readAuth(); !ok || doc.AuthMode != "apikey" {
					t.Errorf("auth.json: %+v, want the API key", doc)
				}
			},
		},
		{
			name: "login_tokens",
			do: func(r *rig, m *engine.Manager) error {
				ts := r.issue(otherAccount)
				return m.LoginTokens(context.Background(), ts.IDToken, ts.AccessToken, ts.RefreshToken)
			},
			want: states.Fresh,
			stored: func(t *testing.T, r *rig) {
				if got := r.mustAuth(); got.AccountID == nil || *got.AccountID != otherAccount.AccountID {
					t.Errorf("auth.json does not hold the new login")
				}
			},
		},
		{
			name: "logout",
			do: func(_ *rig, m *engine.Manager) error {
				_, err := m.Logout(context.Background())
				return err
			},
			want: states.LoggedOut,
			stored: func(t *testing.T, r *rig) {
				if _, ok := r.readAuth(); ok {
					t.Error("auth.json survived the logout")
				}
			},
		},
		{
			name: "reload",
			do: func(_ *rig, m *engine.Manager) error {
				return m.Reload(context.Background())
			},
			want:   states.Fresh,
			stored: func(t *testing.T, r *rig) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			ts := r.issue(mainAccount)
			r.writeAuth(ts)
			m := r.start(r.config())
			rules := watch(t, m)

			r.gate.hold()
			refreshed := make(chan error, 1)
			go func() { refreshed <- m.Refresh(context.Background()) }()
			r.gate.awaitArrival(t)

			done := make(chan error, 1)
			go func() { done <- tt.do(r, m) }()
			select {
			case err := <-done:
				t.Fatalf("%s returned while the refresh was in flight: %v", tt.name, err)
			case <-time.After(50 * time.Millisecond):
			}

			r.gate.release()
			// Refresh reports the state it finds when it stops waiting,
			// which may already be the one the outside action left; that
			// the refresh itself completed is checked below.
			<-refreshed
			if err := <-done; err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if s := m.Snapshot(); s.State != tt.want {
				t.Fatalf("state %s, want %s", s.State, tt.want)
			}
			tt.stored(t, r)
			m.Close()
			n := countRules(rules.transitions())
			if n["persisted_refresh"] != 1 {
				t.Errorf("rules %v: the refresh did not complete", n)
			}
			if st := r.srv.Stats(); st.Redemptions != 1 || st.ReuseAttempts != 0 {
				t.Errorf("server stats %+v", st)
			}
		})
	}
}

// TestManagerNeverServesAnEmptyToken: whatever happens concurrently (here a
// sign-in and sign-out loop), Token returns a token or an error, never an
// empty token without one.
func TestManagerNeverServesAnEmptyToken(t *testing.T) {
	noLeaks(t)
	store := effectstest.NewMemStore()
	m, err := engine.New(context.Background(), engine.Config{
		Store: store, Endpoint: effectstest.EndpointFunc(nil), StepEveryRequest: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	stop := time.Now().Add(500 * time.Millisecond)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for time.Now().Before(stop) {
			if err := m.LoginAPIKey(ctx, "sk-stress"); err != nil {
				t.Error(err)
				return
			}
			if _, err := m.Logout(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if tok, err := m.Token(ctx); tok == "" && err == nil {
					t.Error("Token returned an empty token and no error")
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestManagerClose: Close wakes every caller waiting for a refresh with
// ErrClosed at once, lets the redemption already sent finish and saves its
// tokens, releases the store lock and leaves no goroutine behind; every call
// after it fails with ErrClosed, the hot path included.
func TestManagerClose(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	ts := r.issue(mainAccount)
	r.writeAuth(ts)
	m := r.start(r.config())

	r.gate.hold()
	waiting := make(chan error, 2)
	go func() { waiting <- m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil).Err }()
	r.gate.awaitArrival(t)
	go func() { _, err := m.Token(ctx); waiting <- err }()
	waitState(t, m, states.Refreshing)

	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	for range 2 {
		if err := <-waiting; !errors.Is(err, engine.ErrClosed) {
			t.Errorf("a waiting caller got %v, want ErrClosed", err)
		}
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a redemption was out at the token server")
	case <-time.After(50 * time.Millisecond):
	}
	r.gate.release()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Close did not return once the redemption was answered")
	}
	if stored := r.mustAuth(); stored.RefreshToken == ts.RefreshToken {
		t.Fatal("the tokens of the redemption Close let finish were not saved")
	}

	// After Close.
	if _, err := m.Token(ctx); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("Token after Close: %v, want ErrClosed", err)
	}
	if d := m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil); !errors.Is(d.Err, engine.ErrClosed) {
		t.Errorf("Observe after Close: %v, want ErrClosed", d.Err)
	}
	if err := m.Refresh(ctx); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("Refresh after Close: %v, want ErrClosed", err)
	}
	if err := m.LoginAPIKey(ctx, "sk-test-after-close"); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("LoginAPIKey after Close: %v, want ErrClosed", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// The store lock was released: another manager of the same home
	// starts with the saved tokens and refreshes at once, with the refresh
	// token the closed one rotated to.
	m2 := r.start(r.config())
	cur, err := m2.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := m2.Observe(ctx, cur, http.StatusUnauthorized, nil); d.Action != engine.Retry {
		t.Fatalf("a second manager: %v (%v), want retry", d.Action, d.Err)
	}
	if st := r.srv.Stats(); st.Redemptions != 2 || st.ReuseAttempts != 0 {
		t.Fatalf("server stats %+v, want two redemptions and no reuse", st)
	}
}

// TestManagerTokenAfterCloseInFresh: the hot path knows about Close too.
func TestManagerTokenAfterCloseInFresh(t *testing.T) {
	r := newRig(t)
	r.writeAuth(r.issue(mainAccount))
	m := r.start(r.config())
	if _, err := m.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if tok, err := m.Token(context.Background()); !errors.Is(err, engine.ErrClosed) || tok != "" {
		t.Fatalf("Token after Close: %q, %v; want ErrClosed", fingerprint(tok), err)
	}
	if _, err := m.TokenSource().Token(); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("TokenSource after Close: %v, want ErrClosed", err)
	}
}

// TestManagerLoginOutlivesItsCaller: a login whose caller gives up during
// the save still completes: the save does not run under the caller's
// context.
func TestManagerLoginOutlivesItsCaller(t *testing.T) {
	r := newRig(t)
	store := newBlockingStore()
	cfg := r.config()
	cfg.Store = store
	m := r.start(cfg)
	rules := watch(t, m)

	store.FailSave = func(states.Record) error { return store.block() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.LoginAPIKey(ctx, "sk-test-impatient") }()
	<-store.started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("LoginAPIKey: %v, want context.Canceled", err)
	}
	close(store.release)

	if got := rules.until(t, "persisted"); !cmp.Equal(got, []string{"login_api_key", "persisted"}) {
		t.Fatalf("rules %v, want the login saved", got)
	}
	if rec, _ := store.Get(); !rec.APIKey.Equal(states.NewSecret("sk-test-impatient")) {
		t.Fatal("the store does not hold the key")
	}
	if s := m.Snapshot(); s.Unsaved {
		t.Fatalf("snapshot %+v, want the key saved", s)
	}
}

// TestManagerTransientErrorWrapsTheStoreError: when the store cannot be read
// before a refresh (here, a permission problem), the error a caller gets once
// the token has expired wraps the store's error, so that a host can tell a
// problem that will not pass by itself from one that will.
func TestManagerTransientErrorWrapsTheStoreError(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	store := effectstest.NewMemStore()
	ts := r.issue(mainAccount)
	store.Put(states.Record{Mode: states.ModeManaged, Tokens: ts.Tokens(),
		AccessExpiry: ts.AccessExpiry, LastRefresh: mgrStart})
	cfg := r.config()
	cfg.Store = store
	m := r.start(cfg)

	store.FailLoad = func() error {
		return fmt.Errorf("storage: cannot read the home: %w", fs.ErrPermission)
	}
	r.clock.Set(ts.AccessExpiry.Add(time.Second))
	_, err := m.Token(ctx)
	if !errors.Is(err, engine.ErrTransient) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Token = %v; want ErrTransient wrapping fs.ErrPermission", err)
	}
	if n := r.requests(); n != 0 {
		t.Fatalf("%d requests to the token endpoint, want none", n)
	}

	// Once the store can be read again, the error goes with the failure.
	store.FailLoad = nil
	r.clock.Set(m.Snapshot().RetryAt.Add(time.Second))
	if _, err := m.Token(ctx); err != nil {
		t.Fatalf("after the store recovered: %v", err)
	}
	if s := m.Snapshot(); s.LastError != "" {
		t.Fatalf("LastError %q after a success", s.LastError)
	}
}

// TestManagerCloseLetsARedemptionFinish: a redemption already sent when the
// caller gives up and the manager closes is let finish, and its tokens are
// saved. Cutting it off would lose the answer to a request the provider may
// already have served, and with it the rotated refresh token: the one in
// the store would then be spent, and the login dead.
func TestManagerCloseLetsARedemptionFinish(t *testing.T) {
	r := newRig(t)
	store := effectstest.NewMemStore()
	ts := r.issue(mainAccount)
	store.Put(states.Record{Mode: states.ModeManaged, Tokens: ts.Tokens(),
		AccessExpiry: ts.AccessExpiry, LastRefresh: mgrStart})

	sent, release := make(chan struct{}), make(chan struct{})
	rotated := states.NewSecret("rt-rotated-while-closing")
	cfg := r.config()
	cfg.Store = store
	cfg.Endpoint = effectstest.EndpointFunc(func(ctx context.Context, _ states.Secret) (states.Grant, error) {
		close(sent) // the provider has it, and rotates
		select {
		case <-release:
			return states.Grant{AccessToken: states.NewSecret("at-new"), RefreshToken: rotated,
				AccessExpiry: r.clock.Now().Add(time.Hour)}, nil
		case <-ctx.Done():
			return states.Grant{}, &states.RefreshError{Detail: "cancelled", Err: ctx.Err()}
		}
	})
	m := r.start(cfg)

	ctx, cancel := context.WithCancel(context.Background())
	refreshed := make(chan error, 1)
	go func() { refreshed <- m.Refresh(ctx) }()
	<-sent
	cancel()
	if err := <-refreshed; !errors.Is(err, context.Canceled) {
		t.Fatalf("Refresh = %v, want the caller's cancellation", err)
	}
	closed := make(chan struct{})
	go func() { m.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while the redemption was still out")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-closed
	if rec, _ := store.Get(); !rec.Tokens.RefreshToken.Equal(rotated) {
		t.Fatal("the store does not hold the refresh token the provider rotated to")
	}
}

// TestManagerPermanentErrorWrapsItsCause: a store this user may not read
// fails the credential (never a silent logout), and the error says why in a
// form a host can test: fs.ErrPermission, not a dead login. A refusal by
// the provider unwraps to its *states.RefreshError.
func TestManagerPermanentErrorWrapsItsCause(t *testing.T) {
	ctx := context.Background()
	t.Run("store_not_readable", func(t *testing.T) {
		r := newRig(t)
		store := effectstest.NewMemStore()
		store.FailLoad = func() error {
			return fmt.Errorf("storage: read auth.json: %w (%w)", states.ErrUnreadable, fs.ErrPermission)
		}
		cfg := r.config()
		cfg.Store = store
		m := r.start(cfg)
		_, err := m.Token(ctx)
		if !errors.Is(err, engine.ErrPermanent) || !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("Token = %v; want ErrPermanent wrapping fs.ErrPermission", err)
		}
	})
	t.Run("refused_by_the_provider", func(t *testing.T) {
		r := newRig(t)
		ts := r.issue(mainAccount)
		r.writeAuth(ts)
		m := r.start(r.config())
		r.srv.Revoke(ts.RefreshToken)
		err := m.Refresh(ctx)
		var re *states.RefreshError
		if !errors.Is(err, engine.ErrPermanent) || !errors.As(err, &re) || re.Reason != states.ReasonRevoked {
			t.Fatalf("Refresh = %v; want ErrPermanent wrapping the provider's refusal", err)
		}
	})
}
