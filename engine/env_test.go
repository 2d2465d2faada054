package engine_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
)

const envKey = "sk-test-from-the-environment"

func getenv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// TestManagerEnvAPIKey: with HonorEnvAPIKey, CODEX_API_KEY beats whatever
// is stored and is never written anywhere, whatever the manager is asked.
func TestManagerEnvAPIKey(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		stored bool // auth.json holds OAuth tokens
	}{
		{"beats_stored_tokens", true},
		{"empty_home", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			if tt.stored {
				r.writeAuth(r.issue(mainAccount))
			}
			before, _ := os.ReadFile(r.authPath())
			cfg := r.config()
			cfg.HonorEnvAPIKey = true
			cfg.Getenv = getenv(map[string]string{engine.EnvAPIKey: " " + envKey + "\n"})
			m := r.start(cfg)

			if s := m.Snapshot(); s.State != states.APIKey || !s.FromEnv || s.Mode != states.ModeAPIKey {
				t.Fatalf("snapshot %+v, want the environment's API key", s)
			}
			if got, err := m.Token(ctx); err != nil || got != envKey {
				t.Fatalf("Token = %q, %v; want the environment's key, trimmed", got, err)
			}
			d := m.Observe(ctx, envKey, http.StatusUnauthorized, nil)
			if d.Action != engine.GiveUp || !errors.Is(d.Err, engine.ErrKeyRejected) {
				t.Fatalf("401 for the key: %v (%v), want give up, key rejected", d.Action, d.Err)
			}
			if err := m.Refresh(ctx); !errors.Is(err, engine.ErrNotRefreshable) {
				t.Fatalf("Refresh: %v, want ErrNotRefreshable", err)
			}
			if err := m.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			if got, err := m.Token(ctx); err != nil || got != envKey {
				t.Fatalf("Token after reload = %q, %v", got, err)
			}
			m.Close()

			after, _ := os.ReadFile(r.authPath())
			if !cmp.Equal(before, after) {
				t.Fatal("auth.json changed")
			}
			if n := r.requests(); n != 0 {
				t.Fatalf("%d requests reached the token server", n)
			}
		})
	}
}

// TestManagerEnvAPIKeyIgnored: the variable counts only when honoured and
// not blank.
func TestManagerEnvAPIKeyIgnored(t *testing.T) {
	tests := []struct {
		name  string
		honor bool
		value string
	}{
		{"not_honoured", false, envKey},
		{"blank", true, "  \t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			ts := r.issue(mainAccount)
			r.writeAuth(ts)
			cfg := r.config()
			cfg.HonorEnvAPIKey = tt.honor
			cfg.Getenv = getenv(map[string]string{engine.EnvAPIKey: tt.value})
			m := r.start(cfg)
			if got, err := m.Token(context.Background()); err != nil || got != ts.AccessToken {
				t.Fatalf("Token = %s, %v; want the stored tokens", fingerprint(got), err)
			}
			if m.Snapshot().FromEnv {
				t.Fatal("snapshot says the credential came from the environment")
			}
		})
	}
}

// TestManagerEnvAPIKeyRestricted: an environment key that breaks a forced
// ChatGPT login is refused, and the stored credential, which did nothing
// wrong, is left alone.
func TestManagerEnvAPIKeyRestricted(t *testing.T) {
	r := newRig(t)
	r.writeAuth(r.issue(mainAccount))
	before, _ := os.ReadFile(r.authPath())
	cfg := r.config()
	cfg.HonorEnvAPIKey = true
	cfg.Getenv = getenv(map[string]string{engine.EnvAPIKey: envKey})
	cfg.ForcedLoginMethod = "chatgpt"
	m := r.start(cfg)

	_, err := m.Token(context.Background())
	wantRestricted(t, "Token", err)
	m.Close()
	if after, _ := os.ReadFile(r.authPath()); !cmp.Equal(before, after) {
		t.Fatal("the stored credential was touched")
	}
}
