package engine_test

import (
	"testing"
	"time"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// BenchmarkStep measures Machine.Step on the common events. A step that
// leaves the state is measured as part of a cycle that comes back to where
// it started, so that every iteration does the same work on a real machine
// without rebuilding it; ns/step divides the cycle by its steps. Events are
// built inside the loop, as a host or runner builds them.
func BenchmarkStep(b *testing.B) {
	b.Run("token_requested/fresh", func(b *testing.B) {
		m := reachByPath(b, transitions.Policy{}, onLoaded(recFresh, "v1"))
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			res, err := m.Step(states.TokenRequested{At: epoch})
			if err != nil || res.Rule != "token_fresh" {
				b.Fatalf("rule %s, %v", res.Rule, err)
			}
			n++
		}
		perStep(b, n, 1)
	})

	// A 401 for a token that was already replaced changes nothing.
	b.Run("unauthorized/old_generation_in_fresh", func(b *testing.B) {
		m := reachByPath(b, transitions.Policy{}, onLoaded(recFresh, "v1"), onLogin(recFresh))
		old := m.Extended().Generation - 1
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			mustBench(b, m, states.Unauthorized{At: epoch, Generation: old}, "unauthorized_old_generation")
			n++
		}
		perStep(b, n, 1)
	})

	// A 401 for the current token moves fresh to refreshing; the re-read
	// finds tokens another process already rotated and adopts them, back to
	// fresh. Two steps a cycle.
	b.Run("unauthorized/fresh_to_refreshing_and_back", func(b *testing.B) {
		m := reachByPath(b, transitions.Policy{}, onLoaded(recFresh, "v1"))
		stored := [2]states.Record{
			managedTokens("a", allowedWS, epoch.Add(time.Hour)),
			managedTokens("b", allowedWS, epoch.Add(time.Hour)),
		}
		versions := [2]states.Version{"v-a", "v-b"}
		gen := m.Extended().Generation
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			res := mustBench(b, m, states.Unauthorized{At: epoch, Generation: gen}, "unauthorized_refresh")
			res = mustBench(b, m, states.StoreReread{At: epoch, Generation: res.Generation,
				Record: stored[n%2], Version: versions[n%2]}, "reread_adopt_fresh")
			gen = res.Generation
			n++
		}
		perStep(b, n, 2)
	})

	// The whole refresh: 401 → refreshing (LockAndReread), store unchanged
	// (RedeemRefreshToken), refresh succeeded (PersistRecord), persisted →
	// fresh (ReleaseLock, NotifyObservers, WakeAt). Four steps a cycle.
	b.Run("refresh_succeeded/full_cycle", func(b *testing.B) {
		m := reachByPath(b, transitions.Policy{}, onLoaded(recFresh, "v1"))
		grants := [2]states.Grant{grantRotated("a", epoch), grantRotated("b", epoch)}
		gen := m.Extended().Generation
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			mustBench(b, m, states.Unauthorized{At: epoch, Generation: gen}, "unauthorized_refresh")
			mustBench(b, m, states.StoreReread{At: epoch, Generation: gen, Record: m.Extended().Record,
				Version: "v1"}, "reread_unchanged")
			res := mustBench(b, m, states.RefreshSucceeded{At: epoch, Generation: gen, Grant: grants[n%2]},
				"refresh_succeeded")
			res = mustBench(b, m, states.Persisted{At: epoch, Generation: res.Generation, Version: "v1"},
				"persisted_refresh")
			gen = res.Generation
			n++
		}
		perStep(b, n, 4)
	})
}

func mustBench(b *testing.B, m *engine.Machine, ev states.Event, rule string) engine.Result {
	res, err := m.Step(ev)
	if err != nil || res.Rule != rule {
		b.Fatalf("Step(%v) in %v: rule %q, %v; want rule %s", ev.Kind(), m.State(), res.Rule, err, rule)
	}
	return res
}

// perStep reports the time per step of a cycle of steps.
func perStep(b *testing.B, iterations, steps int) {
	if iterations > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(iterations*steps), "ns/step")
	}
}
