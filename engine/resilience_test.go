package engine_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credfsm/credfsm/effects/effectstest"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// TestManagerKeepsRotatedTokensWhenTheIDTokenIsBad: the server redeems the
// refresh token but sends an id token that does not parse. The rotated
// refresh token is still saved and used next time: nothing is replayed.
func TestManagerKeepsRotatedTokensWhenTheIDTokenIsBad(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	ts := r.issue(mainAccount)
	r.writeAuth(ts)
	m := r.start(r.config())

	r.srv.Inject(oauthtest.BadIDToken())
	d := m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil)
	if d.Action != engine.Retry {
		t.Fatalf("401: %v (%v), want retry", d.Action, d.Err)
	}
	stored := r.mustAuth()
	if stored.RefreshToken == ts.RefreshToken || stored.AccessToken != d.Token {
		t.Fatal("auth.json does not hold the rotated tokens")
	}
	if stored.IDToken != ts.IDToken {
		t.Fatal("auth.json holds the id token that does not parse")
	}
	if s := m.Snapshot(); s.Email != mainAccount.Email || !strings.Contains(s.LastError, "id token") {
		t.Fatalf("snapshot %+v, want the old claims and a note about the id token", s)
	}

	r.clock.Advance(transitions.DefaultRecoveryCooldown) // a 401 sooner would be given up on
	if d := m.Observe(ctx, d.Token, http.StatusUnauthorized, nil); d.Action != engine.Retry {
		t.Fatalf("next 401: %v (%v), want retry", d.Action, d.Err)
	}
	if st := r.srv.Stats(); st.Redemptions != 2 || st.ReuseAttempts != 0 {
		t.Fatalf("server stats %+v, want two redemptions and no reuse", st)
	}
}

// TestManagerServesUnsavedTokens: when the rotated tokens cannot be saved,
// they are served from memory (the only live refresh token is there now),
// the snapshot says so, and the next refresh redeems that token, not the
// retired one on disk.
func TestManagerServesUnsavedTokens(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	ts := r.issue(mainAccount)
	store := effectstest.NewMemStore()
	store.Put(states.Record{Mode: states.ModeManaged, Tokens: ts.Tokens(),
		AccessExpiry: ts.AccessExpiry, LastRefresh: mgrStart})
	var failing atomic.Bool
	store.FailSave = func(states.Record) error {
		if failing.Load() {
			return errors.New("disk full")
		}
		return nil
	}
	cfg := r.config()
	cfg.Store = store
	m := r.start(cfg)

	failing.Store(true)
	d := m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil)
	if d.Action != engine.Retry || d.Token == ts.AccessToken {
		t.Fatalf("401: %v (%v), want retry with the new token", d.Action, d.Err)
	}
	if s := m.Snapshot(); s.State != states.Fresh || !s.Unsaved || !strings.Contains(s.LastError, "disk full") {
		t.Fatalf("snapshot %+v, want fresh, unsaved, saying why", s)
	}
	if rec, _ := store.Get(); !rec.Tokens.RefreshToken.Equal(states.NewSecret(ts.RefreshToken)) {
		t.Fatal("the store changed although the save failed")
	}

	// A reload finds the store as it was: the unsaved tokens are kept.
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Token(ctx); err != nil || got != d.Token {
		t.Fatalf("Token after reload: %s, %v; want the unsaved token", fingerprint(got), err)
	}

	// The next refresh redeems the live refresh token and saves.
	failing.Store(false)
	r.clock.Advance(transitions.DefaultRecoveryCooldown)
	next := m.Observe(ctx, d.Token, http.StatusUnauthorized, nil)
	if next.Action != engine.Retry {
		t.Fatalf("next 401: %v (%v), want retry", next.Action, next.Err)
	}
	if st := r.srv.Stats(); st.ReuseAttempts != 0 || st.Redemptions != 2 {
		t.Fatalf("server stats %+v, want two redemptions and no reuse", st)
	}
	if rec, _ := store.Get(); !rec.Tokens.AccessToken.Equal(states.NewSecret(next.Token)) {
		t.Fatal("the store does not hold the latest tokens")
	}
	if s := m.Snapshot(); s.Unsaved {
		t.Fatal("snapshot still says unsaved")
	}
}

// TestManagerRefreshTimeout: a token server that never answers does not
// hold callers beyond RefreshTimeout; the failure is transient and says so.
func TestManagerRefreshTimeout(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	ts := r.issue(mainAccount)
	r.writeAuth(ts)
	cfg := r.config()
	cfg.RefreshTimeout = 100 * time.Millisecond
	m := r.start(cfg)

	r.srv.Inject(oauthtest.Hang())
	began := time.Now()
	d := m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil)
	if d.Action != engine.GiveUp || !errors.Is(d.Err, engine.ErrTransient) {
		t.Fatalf("401 with a silent server: %v (%v), want give up, transient", d.Action, d.Err)
	}
	if took := time.Since(began); took > waitLimit/2 {
		t.Fatalf("the caller waited %v", took)
	}
	if s := m.Snapshot(); s.State != states.Stale || s.RetryAt.IsZero() {
		t.Fatalf("snapshot %+v, want stale with a backoff", s)
	}
	if _, ok := r.readAuth(); !ok {
		t.Fatal("auth.json is gone")
	}
}

// lateReadStore is a MemStore whose next Load, once armed, reads the record
// and then waits before returning it: a slow read whose result is already
// old when it arrives.
type lateReadStore struct {
	*effectstest.MemStore
	armed   atomic.Bool
	read    chan struct{}
	release chan struct{}
}

func (s *lateReadStore) Load(ctx context.Context) (states.Record, states.Version, error) {
	rec, v, err := s.MemStore.Load(ctx)
	if s.armed.CompareAndSwap(true, false) {
		s.read <- struct{}{}
		<-s.release
	}
	return rec, v, err
}

// TestManagerReloadNeverAppliesAnOldRead: a reload whose read of the store
// was overtaken by this manager's own write (here a refresh that rotated
// the tokens) must not put the old tokens back: they are spent.
func TestManagerReloadNeverAppliesAnOldRead(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	ts := r.issue(mainAccount)
	store := &lateReadStore{MemStore: effectstest.NewMemStore(),
		read: make(chan struct{}), release: make(chan struct{})}
	store.Put(states.Record{Mode: states.ModeManaged, Tokens: ts.Tokens(),
		AccessExpiry: ts.AccessExpiry, LastRefresh: mgrStart})
	cfg := r.config()
	cfg.Store = store
	m := r.start(cfg)

	store.armed.Store(true)
	reloaded := make(chan error, 1)
	go func() { reloaded <- m.Reload(ctx) }()
	<-store.read // the reload holds the old tokens now

	d := m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil)
	if d.Action != engine.Retry {
		t.Fatalf("401: %v (%v), want retry", d.Action, d.Err)
	}
	close(store.release)
	if err := <-reloaded; err != nil {
		t.Fatalf("Reload: %v", err)
	}

	if got, err := m.Token(ctx); err != nil || got != d.Token {
		t.Fatalf("Token after the reload: %s, %v; want the refreshed token %s, not the spent one",
			fingerprint(got), err, fingerprint(d.Token))
	}
	r.clock.Advance(transitions.DefaultRecoveryCooldown)
	if next := m.Observe(ctx, d.Token, http.StatusUnauthorized, nil); next.Action != engine.Retry {
		t.Fatalf("next 401: %v (%v), want retry", next.Action, next.Err)
	}
	if st := r.srv.Stats(); st.ReuseAttempts != 0 {
		t.Fatalf("server stats %+v: a spent refresh token was replayed", st)
	}
}

// lateAnswer passes a request to the token server, which redeems it, and
// hands the answer back only once the request's context has ended: a
// response that arrives at the very end of the time allowed for a refresh.
type lateAnswer struct{ base http.RoundTripper }

func (l lateAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	<-req.Context().Done()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// TestManagerSavesARedemptionThatEndsAtTheDeadline: when the token server's
// answer arrives just as the refresh runs out of time, the refresh token it
// rotated is already spent. The new tokens must still be saved: otherwise
// the store keeps the spent token, and every other process sharing it
// replays that token, which the provider refuses as reused.
func TestManagerSavesARedemptionThatEndsAtTheDeadline(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	ts := r.issue(mainAccount)
	r.writeAuth(ts)
	cfg := r.config()
	cfg.RefreshTimeout = 200 * time.Millisecond
	cfg.HTTPClient = &http.Client{Transport: lateAnswer{r.srv.HTTPClient().Transport}}
	m := r.start(cfg)

	d := m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil)
	if st := r.srv.Stats(); st.Redemptions != 1 {
		t.Fatalf("server stats %+v, want the refresh token redeemed", st)
	}
	if d.Action != engine.Retry {
		t.Fatalf("401: %v (%v), want retry with the redeemed token", d.Action, d.Err)
	}
	if stored := r.mustAuth(); stored.RefreshToken == ts.RefreshToken {
		t.Fatalf("auth.json still holds the spent refresh token (snapshot %+v)", m.Snapshot())
	}

	// Another process sharing the home carries on without replaying it.
	other := r.start(r.config())
	tok, err := other.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := other.Observe(ctx, tok, http.StatusUnauthorized, nil); d.Action != engine.Retry {
		t.Fatalf("another process's 401: %v (%v), want retry", d.Action, d.Err)
	}
	if st := r.srv.Stats(); st.ReuseAttempts != 0 {
		t.Fatalf("server stats %+v: the spent refresh token was replayed", st)
	}
}
