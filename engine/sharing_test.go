package engine_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"testing"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
)

// TestManagerFollowsAnotherProcess: before redeeming, the manager re-reads
// the shared store under its lock. Whatever another process left there
// wins, and the refresh token in memory is not spent.
func TestManagerFollowsAnotherProcess(t *testing.T) {
	tests := []struct {
		name string
		// other changes the store as another process would, and returns
		// the token the manager should retry with ("" for none).
		other     func(r *rig) string
		wantState states.State
		wantErr   error
	}{
		{
			name: "it_refreshed",
			other: func(r *rig) string {
				ts := r.issue(mainAccount)
				r.writeAuth(ts)
				return ts.AccessToken
			},
			wantState: states.Fresh,
		},
		{
			name: "it_signed_in_elsewhere",
			other: func(r *rig) string {
				ts := r.issue(otherAccount)
				r.writeAuth(ts)
				return ts.AccessToken
			},
			wantState: states.Fresh,
		},
		{
			name: "it_switched_to_an_api_key",
			other: func(r *rig) string {
				writeAPIKeyFile(r.t, r.home, "sk-test-other-process")
				return "sk-test-other-process"
			},
			wantState: states.APIKey,
		},
		{
			name: "it_signed_out",
			other: func(r *rig) string {
				if err := os.Remove(r.authPath()); err != nil {
					r.t.Fatal(err)
				}
				return ""
			},
			wantState: states.LoggedOut,
			wantErr:   engine.ErrLoggedOut,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			ts := r.issue(mainAccount)
			r.writeAuth(ts)
			m := r.start(r.config())

			want := tt.other(r)
			d := m.Observe(context.Background(), ts.AccessToken, http.StatusUnauthorized, nil)
			switch {
			case tt.wantErr != nil:
				if d.Action != engine.GiveUp || !errors.Is(d.Err, tt.wantErr) {
					t.Fatalf("401: %v (%v), want give up with %v", d.Action, d.Err, tt.wantErr)
				}
			case d.Action != engine.Retry || d.Token != want:
				t.Fatalf("401: %v (%v), want retry with the other process's credential", d.Action, d.Err)
			}
			if s := m.Snapshot(); s.State != tt.wantState {
				t.Fatalf("state %s, want %s", s.State, tt.wantState)
			}
			if n := r.requests(); n != 0 {
				t.Fatalf("%d requests reached the token server, want none", n)
			}
		})
	}
}
