package engine_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// BenchmarkStep measures Machine.Step on the common events. A step that
// leaves the state is measured as part of a cycle that comes back to where
// it started, so that every iteration does the same work on a real machine
// without rebuilding it; ns/step and allocs/step divide the cycle by its
// steps. Events are built inside the loop, as a host or runner builds them.
func BenchmarkStep(b *testing.B) {
	b.Run("token_requested/fresh", func(b *testing.B) {
		m := reachByPath(b, transitions.Policy{}, onLoaded(recFresh, "v1"))
		b.ReportAllocs()
		n, allocs := 0, mallocs()
		for b.Loop() {
			res, err := m.Step(states.TokenRequested{At: epoch})
			if err != nil || res.Rule != "token_fresh" {
				b.Fatalf("rule %s, %v", res.Rule, err)
			}
			n++
		}
		perStep(b, n, 1, allocs)
	})

	// A 401 for a token that was already replaced changes nothing.
	b.Run("unauthorized/old_generation_in_fresh", func(b *testing.B) {
		m := reachByPath(b, transitions.Policy{}, onLoaded(recFresh, "v1"), onLogin(recFresh))
		old := m.Extended().Generation - 1
		b.ReportAllocs()
		n, allocs := 0, mallocs()
		for b.Loop() {
			mustBench(b, m, states.Unauthorized{At: epoch, Generation: old}, "unauthorized_old_generation")
			n++
		}
		perStep(b, n, 1, allocs)
	})

	// While a refresh is in flight, every further 401 for the token being
	// replaced joins it: the step every caller but the first takes in a
	// refresh storm. It changes nothing, so each iteration is one step.
	b.Run("unauthorized/joins_refresh_in_flight", func(b *testing.B) {
		m := reachByPath(b, transitions.Policy{}, onLoaded(recFresh, "v1"), on401)
		gen := m.Extended().Generation
		b.ReportAllocs()
		n, allocs := 0, mallocs()
		for b.Loop() {
			mustBench(b, m, states.Unauthorized{At: epoch, Generation: gen}, "unauthorized_wait")
			n++
		}
		perStep(b, n, 1, allocs)
	})

	// A 401 for the current token moves fresh to refreshing; the re-read
	// finds tokens another process already rotated and adopts them, back to
	// fresh. Two steps a cycle. Each cycle starts one recovery cooldown after
	// the one before (a 401 sooner would be answered without a refresh), so
	// the tokens adopted expire far ahead of the cycles' clock.
	b.Run("unauthorized/fresh_to_refreshing_and_back", func(b *testing.B) {
		m := reachByPath(b, transitions.Policy{}, onLoaded(recFresh, "v1"))
		stored := [2]states.Record{
			managedTokens("a", allowedWS, farAhead),
			managedTokens("b", allowedWS, farAhead),
		}
		versions := [2]states.Version{"v-a", "v-b"}
		gen := m.Extended().Generation
		b.ReportAllocs()
		n, allocs := 0, mallocs()
		for b.Loop() {
			at := cycleStart(n)
			res := mustBench(b, m, states.Unauthorized{At: at, Generation: gen}, "unauthorized_refresh")
			res = mustBench(b, m, states.StoreReread{At: at, Generation: res.Generation,
				Record: stored[n%2], Version: versions[n%2]}, "reread_adopt_fresh")
			gen = res.Generation
			n++
		}
		perStep(b, n, 2, allocs)
	})

	// The whole refresh: 401 → refreshing (LockAndReread), store unchanged
	// (RedeemRefreshToken), refresh succeeded (PersistRecord), persisted →
	// fresh (ReleaseLock, NotifyObservers, WakeAt). Four steps a cycle.
	b.Run("refresh_succeeded/full_cycle", func(b *testing.B) {
		m := reachByPath(b, transitions.Policy{}, onLoaded(recFresh, "v1"))
		grants := [2]states.Grant{grantRotated("a", farAhead), grantRotated("b", farAhead)}
		gen := m.Extended().Generation
		b.ReportAllocs()
		n, allocs := 0, mallocs()
		for b.Loop() {
			at := cycleStart(n)
			mustBench(b, m, states.Unauthorized{At: at, Generation: gen}, "unauthorized_refresh")
			mustBench(b, m, states.StoreReread{At: at, Generation: gen, Record: m.Extended().Record,
				Version: "v1"}, "reread_unchanged")
			res := mustBench(b, m, states.RefreshSucceeded{At: at, Generation: gen, Grant: grants[n%2]},
				"refresh_succeeded")
			res = mustBench(b, m, states.Persisted{At: at, Generation: res.Generation, Version: "v1"},
				"persisted_refresh")
			gen = res.Generation
			n++
		}
		perStep(b, n, 4, allocs)
	})
}

// farAhead is an expiry no cycle's clock reaches: a cycle a minute for a
// hundred thousand hours is six million cycles, more than a benchmark runs.
var farAhead = epoch.Add(100_000 * time.Hour)

// cycleStart is when cycle n of a recovery benchmark starts: one recovery
// cooldown after the cycle before, so that its 401 starts a recovery.
func cycleStart(n int) time.Time {
	return epoch.Add(time.Duration(n) * transitions.DefaultRecoveryCooldown)
}

func mustBench(b *testing.B, m *engine.Machine, ev states.Event, rule string) engine.Result {
	res, err := m.Step(ev)
	if err != nil || res.Rule != rule {
		b.Fatalf("Step(%v) in %v: rule %q, %v; want rule %s", ev.Kind(), m.State(), res.Rule, err, rule)
	}
	return res
}

// perStep reports the time and the allocations per step of a cycle of
// steps; allocs is what mallocs returned before the loop.
func perStep(b *testing.B, iterations, steps int, allocs uint64) {
	if iterations > 0 {
		n := float64(iterations * steps)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/step")
		b.ReportMetric(float64(mallocs()-allocs)/n, "allocs/step")
	}
}

// mallocs returns how many heap objects the process has allocated so far.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}
