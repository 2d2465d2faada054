package enginetest_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/engine/enginetest"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
	"github.com/credfsm/credfsm/transitions"
)

// The model answers an event the way the machine must: here a login with
// managed tokens, the save that follows, and a 401 for the token.
func ExampleModel() {
	at := time.Date(2026, time.May, 4, 8, 0, 0, 0, time.UTC)
	m := enginetest.NewModel(enginetest.Policy{})
	tokens := enginetest.Records(at)[1] // managed tokens, fresh at at

	show := func(ev states.Event) {
		st, err := m.Step(ev)
		if err != nil {
			fmt.Println(ev.Kind(), "refused:", err)
			return
		}
		var kinds []string
		for _, c := range st.Commands {
			kinds = append(kinds, c.Kind().String())
		}
		fmt.Println(st.Event, st.From, "->", st.To, kinds)
	}
	show(states.LoginRequested{At: at, Record: tokens})
	show(states.Persisted{At: at, Generation: m.Generation, Version: "v1"})
	show(states.Unauthorized{At: at, Generation: m.Generation - 1})
	show(states.Unauthorized{At: at, Generation: m.Generation})
	// Output:
	// login_requested logged_out -> fresh [PersistRecord WakeAt]
	// persisted fresh -> fresh []
	// unauthorized fresh -> fresh []
	// unauthorized fresh -> refreshing [LockAndReread]
}

// A machine checked against the model over random events: the shape of a
// host's own test of a custom table.
func ExampleEvents() {
	check := func(t *rapid.T) {
		mach := engine.NewMachine(nil, transitions.Policy{})
		model := enginetest.NewModel(enginetest.Policy{})
		now := time.Date(2026, time.May, 4, 8, 0, 0, 0, time.UTC)
		t.Repeat(map[string]func(*rapid.T){
			"event": func(t *rapid.T) {
				ev := enginetest.Events(model, now).Draw(t, "event")
				got, gotErr := mach.Step(ev)
				want, wantErr := model.Step(ev)
				if (gotErr == nil) != (wantErr == nil) || (gotErr == nil && got.To != want.To) {
					t.Fatalf("%s: machine %v %v, model %v %v", ev.Kind(), got.To, gotErr, want.To, wantErr)
				}
			},
		})
	}
	_ = check // in a test: rapid.Check(t, check)
}

// A manager's invariants checked after every step of a host's own rapid
// test: the manager runs on a real store in a temporary home, against a
// loopback token server, on a manual clock.
func ExampleChecker() {
	test := func(t *testing.T) {
		rapid.Check(t, func(rt *rapid.T) {
			clock := enginetest.NewClock(time.Date(2026, time.May, 4, 8, 0, 0, 0, time.UTC))
			srv := oauthtest.NewServer(oauthtest.WithClock(clock.Now))
			defer srv.Close()
			stats := func() enginetest.ServerStats {
				s := srv.Stats()
				return enginetest.ServerStats{Requests: s.Requests, Redemptions: s.Redemptions}
			}
			wire := enginetest.NewWire(srv.HTTPClient().Transport, stats)
			real, err := storage.Open(storage.Options{Home: t.TempDir()})
			if err != nil {
				rt.Fatal(err)
			}
			store := enginetest.NewFaultStore(real)
			logs := enginetest.NewLogs()
			var secrets enginetest.Secrets
			checker := enginetest.NewChecker(enginetest.CheckOptions{
				Logs: logs, Secrets: &secrets, Wire: wire, Store: store,
			})

			profile := srv.CodexProfile()
			m, err := engine.New(context.Background(), engine.Config{
				Store: store, Profile: &profile, Clock: clock, Logger: logs.Logger(),
				HTTPClient: &http.Client{Transport: wire},
			})
			if err != nil {
				rt.Fatal(err)
			}
			defer m.Close()
			ts := srv.Issue(oauthtest.Account{Email: "dev@example.com", AccountID: "ws-1"})
			secrets.Add(ts.IDToken, ts.AccessToken, ts.RefreshToken)

			rt.Repeat(map[string]func(*rapid.T){
				"": func(t *rapid.T) { checker.CheckInvariants(t, m) },
				"clock": func(t *rapid.T) {
					if err := clock.Advance(enginetest.Jumps().Draw(t, "jump")); err != nil {
						t.Fatal(err)
					}
				},
				"login": func(t *rapid.T) {
					checker.Err(m.LoginTokens(context.Background(), ts.IDToken, ts.AccessToken, ts.RefreshToken))
				},
				"token": func(t *rapid.T) {
					checker.Handed(m.Token(context.Background()))
				},
			})
		})
	}
	_ = test // a test function: func TestManagerInvariants(t *testing.T) { test(t) }
}
