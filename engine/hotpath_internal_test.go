package engine

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/credfsm/credfsm/effects/effectstest"
	"github.com/credfsm/credfsm/states"
)

// TestTokenTakesNoLock: Token in fresh and for an API key is answered while
// another goroutine holds the manager's lock, as a step or a flight's
// bookkeeping does.
func TestTokenTakesNoLock(t *testing.T) {
	start := time.Date(2026, time.April, 6, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		rec  states.Record
	}{
		{"fresh", states.Record{Mode: states.ModeManaged, Tokens: states.Tokens{
			IDToken: states.NewSecret("id"), AccessToken: states.NewSecret("access"),
			RefreshToken: states.NewSecret("refresh")},
			AccessExpiry: start.Add(time.Hour), LastRefresh: start}},
		{"api_key", states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret("sk-test-lock")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			store := effectstest.NewMemStore()
			store.Put(tt.rec)
			m, err := New(context.Background(), Config{Store: store,
				Endpoint: effectstest.EndpointFunc(nil), Clock: effectstest.NewClock(start)})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()

			m.mu.Lock()
			got := make(chan string, 1)
			go func() {
				tok, _ := m.Token(context.Background())
				got <- tok
			}()
			select {
			case tok := <-got:
				if tok != tt.rec.Bearer().Reveal() {
					t.Errorf("Token = %q", tok)
				}
			case <-time.After(5 * time.Second):
				t.Error("Token waited for the manager's lock")
			}
			m.mu.Unlock()
		})
	}
}
