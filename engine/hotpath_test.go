package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/effects/effectstest"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
)

// TestManagerTokenAllocatesNothing: Token in fresh, and for an API key, does
// not allocate.
func TestManagerTokenAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		clock effects.Clock
		login func(r *rig, m *engine.Manager) error
	}{
		{"fresh/manual_clock", nil, func(r *rig, m *engine.Manager) error {
			ts := r.issue(mainAccount)
			return m.LoginTokens(ctx, ts.IDToken, ts.AccessToken, ts.RefreshToken)
		}},
		{"fresh/wall_clock", effects.SystemClock{}, func(r *rig, m *engine.Manager) error {
			ts := r.issue(mainAccount) // a real hour ahead of the wall clock
			return m.LoginTokens(ctx, ts.IDToken, ts.AccessToken, ts.RefreshToken)
		}},
		{"api_key", nil, func(_ *rig, m *engine.Manager) error {
			return m.LoginAPIKey(ctx, "sk-test-hot-path")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			if tt.clock != nil {
				r.clock.Set(time.Now())
			}
			cfg := r.config()
			if tt.clock != nil {
				cfg.Clock = tt.clock
			}
			m := r.start(cfg)
			if err := tt.login(r, m); err != nil {
				t.Fatal(err)
			}
			want, err := m.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(1000, func() {
				if got, err := m.Token(ctx); err != nil || got != want {
					t.Fatalf("Token = %s, %v", fingerprint(got), err)
				}
			})
			if allocs != 0 {
				t.Fatalf("Token allocates %v times per call, want 0", allocs)
			}
		})
	}
}

// blockingStore is a MemStore whose saves and loads, once armed, wait until
// released, announcing that they started.
type blockingStore struct {
	*effectstest.MemStore
	started chan struct{}
	release chan struct{}
}

func newBlockingStore() *blockingStore {
	s := &blockingStore{MemStore: effectstest.NewMemStore(),
		started: make(chan struct{}, 1), release: make(chan struct{})}
	return s
}

func (s *blockingStore) block() error {
	s.started <- struct{}{}
	<-s.release
	return nil
}

// TestManagerTokenDoesNotWait: Token in fresh is answered while the manager
// is busy with slow store I/O — a login's save, a reload's read.
func TestManagerTokenDoesNotWait(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		arm  func(s *blockingStore)
		busy func(m *engine.Manager) error
	}{
		{
			name: "during_a_save",
			arm:  func(s *blockingStore) { s.FailSave = func(states.Record) error { return s.block() } },
			busy: func(m *engine.Manager) error { return m.LoginAPIKey(ctx, "sk-test-slow-save") },
		},
		{
			name: "during_a_reload",
			arm:  func(s *blockingStore) { s.FailLoad = s.block },
			busy: func(m *engine.Manager) error { return m.Reload(ctx) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			store := newBlockingStore()
			ts := r.issue(mainAccount)
			store.Put(states.Record{Mode: states.ModeManaged, Tokens: ts.Tokens(),
				AccessExpiry: ts.AccessExpiry, LastRefresh: mgrStart})
			cfg := r.config()
			cfg.Store = store
			m := r.start(cfg)
			before, err := m.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}

			tt.arm(store)
			busy := make(chan error, 1)
			go func() { busy <- tt.busy(m) }()
			<-store.started

			served := make(chan string, 1)
			go func() {
				tok, _ := m.Token(ctx)
				served <- tok
			}()
			select {
			case tok := <-served:
				if tok == "" {
					t.Fatal("Token served nothing")
				}
				if tt.name == "during_a_reload" && tok != before {
					t.Fatal("Token changed during a reload that has not read anything yet")
				}
			case <-time.After(waitLimit / 2):
				t.Fatal("Token waited for the store")
			}
			close(store.release)
			if err := <-busy; err != nil {
				t.Fatal(err)
			}
		})
	}
}
