package engine_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// wantRestricted checks that err is a permanent failure for a restriction.
func wantRestricted(t *testing.T, what string, err error) {
	t.Helper()
	var perm *engine.PermanentError
	if !errors.As(err, &perm) || perm.Reason != states.ReasonRestricted {
		t.Fatalf("%s: %v, want a permanent failure for a login restriction", what, err)
	}
}

// TestManagerRestrictionsAtLoad: a stored credential that breaks a login
// restriction is never used, and is removed from the store.
func TestManagerRestrictionsAtLoad(t *testing.T) {
	tests := []struct {
		name   string
		method transitions.Method
		ws     string
		store  func(r *rig)
	}{
		{"tokens_for_another_workspace", "", mainAccount.AccountID,
			func(r *rig) { r.writeAuth(r.issue(otherAccount)) }},
		{"tokens_when_api_keys_are_forced", transitions.MethodAPI, "",
			func(r *rig) { r.writeAuth(r.issue(mainAccount)) }},
		{"api_key_when_chatgpt_is_forced", transitions.MethodChatGPT, "",
			func(r *rig) { writeAPIKeyFile(r.t, r.home, "sk-test-forbidden-key") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			tt.store(r)
			cfg := r.config()
			cfg.ForcedLoginMethod, cfg.ForcedWorkspaceID = tt.method, tt.ws
			m := r.start(cfg)

			s := m.Snapshot()
			if s.State != states.FailedPermanent || s.Failure != states.ReasonRestricted ||
				!strings.Contains(s.LastError, "restricted") {
				t.Fatalf("snapshot %+v, want failed_permanent for a restriction", s)
			}
			if _, ok := r.readAuth(); ok {
				t.Error("the restricted credential is still stored")
			}
			_, err := m.Token(context.Background())
			wantRestricted(t, "Token", err)
			if n := r.requests(); n != 0 {
				t.Errorf("%d requests reached the token server", n)
			}
		})
	}
}

// TestManagerRestrictionsAtLogin: a login that breaks a restriction is
// refused and persists nothing; what was stored before stays.
func TestManagerRestrictionsAtLogin(t *testing.T) {
	ctx := context.Background()

	t.Run("nothing_stored", func(t *testing.T) {
		r := newRig(t)
		cfg := r.config()
		cfg.ForcedWorkspaceID = mainAccount.AccountID
		m := r.start(cfg)

		other := r.issue(otherAccount)
		wantRestricted(t, "LoginTokens, other workspace",
			m.LoginTokens(ctx, other.IDToken, other.AccessToken, other.RefreshToken))
		wantRestricted(t, "LoginExternal, other workspace",
			m.LoginExternal(ctx, other.IDToken, other.AccessToken))
		if _, err := os.Stat(r.authPath()); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("auth.json after refused logins: %v, want none", err)
		}

		// The allowed workspace still signs in.
		ok := r.issue(mainAccount)
		if err := m.LoginTokens(ctx, ok.IDToken, ok.AccessToken, ok.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if got := r.mustAuth(); got.AccessToken != ok.AccessToken {
			t.Fatal("auth.json does not hold the allowed login")
		}
	})

	t.Run("method", func(t *testing.T) {
		r := newRig(t)
		cfg := r.config()
		cfg.ForcedLoginMethod = transitions.MethodChatGPT
		m := r.start(cfg)
		wantRestricted(t, "LoginAPIKey", m.LoginAPIKey(ctx, "sk-test-not-allowed"))
		if _, ok := r.readAuth(); ok {
			t.Fatal("a refused API key was stored")
		}
	})

	t.Run("stored_credential_stays", func(t *testing.T) {
		r := newRig(t)
		r.writeAuth(r.issue(mainAccount))
		before, _ := os.ReadFile(r.authPath())
		cfg := r.config()
		cfg.ForcedWorkspaceID = mainAccount.AccountID
		m := r.start(cfg)

		other := r.issue(otherAccount)
		wantRestricted(t, "LoginTokens, other workspace",
			m.LoginTokens(ctx, other.IDToken, other.AccessToken, other.RefreshToken))
		if after, _ := os.ReadFile(r.authPath()); !cmp.Equal(before, after) {
			t.Fatal("a refused login changed auth.json")
		}
	})
}

// TestManagerRestrictionsOnHostTokens: tokens the host hands back for
// another workspace than the forced one are not used and not stored; the
// tokens in use stay as they were.
func TestManagerRestrictionsOnHostTokens(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	cfg := r.config()
	cfg.ForcedWorkspaceID = mainAccount.AccountID
	m := r.start(cfg)

	ts := r.issue(mainAccount)
	if err := m.LoginExternal(ctx, ts.IDToken, ts.AccessToken); err != nil {
		t.Fatal(err)
	}
	wrong := r.issue(otherAccount)
	calls := 0
	m.SetExternalRefresher(oauth.TokenHostFunc(
		func(ctx context.Context, req oauth.HostRequest) (oauth.HostTokens, error) {
			calls++
			return oauth.HostTokens{AccessToken: states.NewSecret(wrong.AccessToken),
				IDToken: states.NewSecret(wrong.IDToken)}, nil
		}))

	d := m.Observe(ctx, ts.AccessToken, http.StatusUnauthorized, nil)
	if d.Action != engine.GiveUp || !errors.Is(d.Err, engine.ErrTransient) ||
		!strings.Contains(d.Err.Error(), "workspace") {
		t.Fatalf("401 answered with another workspace's tokens: %v (%v), want give up, transient",
			d.Action, d.Err)
	}
	if calls != 1 {
		t.Fatalf("the host was asked %d times, want 1", calls)
	}
	s := m.Snapshot()
	if s.AccountID != mainAccount.AccountID || s.Email != mainAccount.Email {
		t.Fatalf("snapshot %+v, want the allowed account still in use", s)
	}
	if got, err := m.Token(ctx); err != nil || got != ts.AccessToken {
		t.Fatalf("Token = %s, %v; want the allowed token, still valid", fingerprint(got), err)
	}
	if _, ok := r.readAuth(); ok {
		t.Fatal("host tokens reached auth.json")
	}

	// Nothing was stored in memory either: another manager of the same home
	// still finds the allowed tokens.
	m2 := r.start(cfg)
	if got, err := m2.Token(ctx); err != nil || got != ts.AccessToken {
		t.Fatalf("a second manager got %s, %v; want the allowed tokens", fingerprint(got), err)
	}
}
