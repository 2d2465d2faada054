package engine_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
)

// hostSignIn signs m in with host-managed tokens for acct.
func hostSignIn(t *testing.T, r *rig, m *engine.Manager, acct oauthtest.Account) oauthtest.TokenSet {
	t.Helper()
	ts := r.issue(acct)
	if err := m.LoginExternal(context.Background(), ts.IDToken, ts.AccessToken); err != nil {
		t.Fatalf("LoginExternal: %v", err)
	}
	return ts
}

// hostReturning is the answer of a host that hands out ts.
func hostReturning(ts oauthtest.TokenSet) oauth.HostTokens {
	return oauth.HostTokens{AccessToken: states.NewSecret(ts.AccessToken),
		IDToken: states.NewSecret(ts.IDToken)}
}

// hostGiving is a host that always hands out ts.
func hostGiving(ts oauthtest.TokenSet) oauth.TokenHost {
	return oauth.TokenHostFunc(func(context.Context, oauth.HostRequest) (oauth.HostTokens, error) {
		return hostReturning(ts), nil
	})
}

// TestManagerHostTokensStayInMemory: host-managed tokens are never written
// to disk, and nothing of them is sent to the token endpoint.
func TestManagerHostTokensStayInMemory(t *testing.T) {
	r := newRig(t)
	m := r.start(r.config())
	ts := hostSignIn(t, r, m, mainAccount)

	if _, err := os.Stat(r.authPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("auth.json after LoginExternal: %v, want none", err)
	}
	s := m.Snapshot()
	if s.State != states.Fresh || s.Mode != states.ModeExternal || s.AccountID != mainAccount.AccountID {
		t.Fatalf("snapshot %+v, want fresh host-managed tokens", s)
	}
	if got, err := m.Token(context.Background()); err != nil || got != ts.AccessToken {
		t.Fatalf("Token = %s, %v", fingerprint(got), err)
	}
	// Past the stale time host tokens are still served until they expire:
	// only the host can replace them.
	r.clock.Set(ts.AccessExpiry.Add(-time.Minute))
	if got, err := m.Token(context.Background()); err != nil || got != ts.AccessToken {
		t.Fatalf("Token near expiry = %s, %v; want the host's token", fingerprint(got), err)
	}
	if err := m.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh without a host refresher succeeded")
	}
	if n := r.requests(); n != 0 {
		t.Fatalf("%d requests reached the token server", n)
	}
	if _, err := os.Stat(r.authPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("auth.json at the end: %v, want none", err)
	}
}

// TestManagerHostAskedOnceForConcurrent401s: many concurrent 401s for
// host-managed tokens ask the host once; everyone retries with its tokens.
func TestManagerHostAskedOnceForConcurrent401s(t *testing.T) {
	const callers = 200
	r := newRig(t)
	m := r.start(r.config())
	rules := watch(t, m)
	old := hostSignIn(t, r, m, mainAccount)
	fresh := r.issue(mainAccount)

	var calls atomic.Int32
	var asked oauth.HostRequest
	release := make(chan struct{})
	m.SetExternalRefresher(oauth.TokenHostFunc(
		func(ctx context.Context, req oauth.HostRequest) (oauth.HostTokens, error) {
			calls.Add(1)
			asked = req
			<-release
			return hostReturning(fresh), nil
		}))

	got := make([]engine.Decision, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = m.Observe(context.Background(), old.AccessToken, http.StatusUnauthorized, nil)
		}()
	}
	eventually(t, "every caller waits for the host", func() bool {
		return countRules(rules.transitions())["unauthorized_wait"] == callers-1
	})
	close(release)
	wg.Wait()

	for i, d := range got {
		if d.Action != engine.Retry || d.Token != fresh.AccessToken {
			t.Fatalf("caller %d: %v (%v), want retry with the host's token", i, d.Action, d.Err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the host was asked %d times, want 1", n)
	}
	if asked.Reason != oauth.HostReasonUnauthorized || asked.PreviousAccountID != mainAccount.AccountID {
		t.Fatalf("the host was asked %+v", asked)
	}
	if n := r.requests(); n != 0 {
		t.Fatalf("%d requests reached the token endpoint", n)
	}
	if _, ok := r.readAuth(); ok {
		t.Fatal("the host's tokens reached auth.json")
	}
	if tok, err := m.Token(context.Background()); err != nil || tok != fresh.AccessToken {
		t.Fatalf("Token = %s, %v; want the host's token", fingerprint(tok), err)
	}
}

// TestManagerHostFailures: a host that fails, that does not answer in time,
// or that is not registered leads to a transient failure that says so; the
// tokens in use are kept, and the host is asked again after the backoff.
func TestManagerHostFailures(t *testing.T) {
	tests := []struct {
		name string
		host oauth.TokenHost // nil: none registered
		// want is a fragment of the error.
		want string
	}{
		{
			name: "host_error",
			host: oauth.TokenHostFunc(
				func(context.Context, oauth.HostRequest) (oauth.HostTokens, error) {
					return oauth.HostTokens{}, errors.New("the IDE lost its session")
				}),
			want: "the IDE lost its session",
		},
		{
			name: "host_timeout",
			host: oauth.TokenHostFunc(
				func(ctx context.Context, _ oauth.HostRequest) (oauth.HostTokens, error) {
					<-ctx.Done()
					return oauth.HostTokens{}, ctx.Err()
				}),
			want: "no answer within",
		},
		{
			name: "empty_tokens",
			host: oauth.TokenHostFunc(
				func(context.Context, oauth.HostRequest) (oauth.HostTokens, error) {
					return oauth.HostTokens{}, nil
				}),
			want: "no access token",
		},
		{
			name: "no_refresher",
			want: "no host refresher is registered",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r := newRig(t)
			cfg := r.config()
			cfg.HostTimeout = 50 * time.Millisecond
			m := r.start(cfg)
			ts := hostSignIn(t, r, m, mainAccount)
			if tt.host != nil {
				m.SetExternalRefresher(tt.host)
			}

			began := time.Now()
			d := m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil)
			if d.Action != engine.GiveUp || !errors.Is(d.Err, engine.ErrTransient) ||
				!strings.Contains(d.Err.Error(), tt.want) {
				t.Fatalf("401: %v (%v), want give up, transient, saying %q", d.Action, d.Err, tt.want)
			}
			if took := time.Since(began); took > waitLimit/2 {
				t.Fatalf("the failure took %v", took)
			}
			s := m.Snapshot()
			if s.State != states.Stale || s.RetryAt.IsZero() || !strings.Contains(s.LastError, tt.want) {
				t.Fatalf("snapshot %+v, want stale with a backoff", s)
			}
			// The tokens in use have not expired: they are still served.
			if got, err := m.Token(ctx); err != nil || got != ts.AccessToken {
				t.Fatalf("Token = %s, %v; want the host's old token", fingerprint(got), err)
			}

			// After the backoff a working host is asked again.
			fresh := r.issue(mainAccount)
			m.SetExternalRefresher(hostGiving(fresh))
			r.clock.Set(s.RetryAt.Add(time.Second))
			d = m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil)
			if d.Action != engine.Retry || d.Token != fresh.AccessToken {
				t.Fatalf("401 after the backoff: %v (%v), want retry with the host's new token",
					d.Action, d.Err)
			}
		})
	}
}

// TestManagerHostTokensExpire: once host-managed tokens have expired, a
// token request asks the host for new ones.
func TestManagerHostTokensExpire(t *testing.T) {
	r := newRig(t)
	m := r.start(r.config())
	ts := hostSignIn(t, r, m, mainAccount)
	var fresh oauthtest.TokenSet
	m.SetExternalRefresher(oauth.TokenHostFunc(
		func(context.Context, oauth.HostRequest) (oauth.HostTokens, error) {
			fresh = r.issue(mainAccount)
			return hostReturning(fresh), nil
		}))
	r.clock.Set(ts.AccessExpiry.Add(time.Second))
	got, err := m.Token(context.Background())
	if err != nil || got == ts.AccessToken || got != fresh.AccessToken {
		t.Fatalf("Token after expiry = %s, %v; want the host's new token", fingerprint(got), err)
	}
}
