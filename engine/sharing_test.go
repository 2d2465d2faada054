package engine_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
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

// TestManagerLogoutWaitsForTheStoreLock: a logout deletes the credential
// under the store's lock, like every other write. Another process holding
// the lock may be between its re-read and its save of rotated tokens; a
// delete slipping in there would be undone by the save, signing the user
// back in.
func TestManagerLogoutWaitsForTheStoreLock(t *testing.T) {
	r := newRig(t)
	r.writeAuth(r.issue(mainAccount))
	m := r.start(r.config())

	unlock := holdStoreLock(t, r.home)
	done := make(chan error, 1)
	go func() {
		_, err := m.Logout(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		unlock()
		t.Fatalf("Logout returned while another process held the store lock (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, ok := r.readAuth(); !ok {
		unlock()
		t.Fatal("the credential was deleted under another process's lock")
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if _, ok := r.readAuth(); ok {
		t.Fatal("auth.json survived the logout")
	}
}

// TestManagerLogoutClearsAfterTheCallerStopsWaiting: a logout whose caller
// gives up while another process holds the lock, followed by Close (as a
// command line does when its time is up), still clears the store: the
// machine has already forgotten the credential, and a store left holding it
// would sign the user back in at the next start.
func TestManagerLogoutClearsAfterTheCallerStopsWaiting(t *testing.T) {
	r := newRig(t)
	r.writeAuth(r.issue(mainAccount))
	m := r.start(r.config())

	unlock := holdStoreLock(t, r.home)
	defer unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := m.Logout(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Logout = %v, want the caller's deadline", err)
	}
	m.Close()
	if _, ok := r.readAuth(); ok {
		t.Fatal("auth.json survived a logout whose caller stopped waiting")
	}
}

// holdStoreLock takes the store lock of home as another process would.
func holdStoreLock(t *testing.T, home string) (unlock func() error) {
	t.Helper()
	other, err := storage.Open(storage.Options{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	unlock, err = other.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return unlock
}
