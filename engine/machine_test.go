package engine_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

func TestNewMachineStartsAtTheInitialState(t *testing.T) {
	m := engine.NewMachine(nil, transitions.Policy{})
	if got := m.State(); got != transitions.Default().Initial() {
		t.Errorf("State() = %v, want the table's initial state %v", got, transitions.Default().Initial())
	}
	if diff := cmp.Diff(states.Extended{}, m.Extended()); diff != "" {
		t.Errorf("a new machine has extended state:\n%s", diff)
	}
	if m.Table() != transitions.Default() {
		t.Error("a nil table does not mean the default table")
	}
	p := transitions.Policy{ForcedWorkspace: allowedWS}
	if got := engine.NewMachine(nil, p).Policy(); got != p {
		t.Errorf("Policy() = %+v, want %+v", got, p)
	}
}

// TestPermittedMatchesTable: Permitted lists exactly the event kinds that
// some rule of the table accepts in the current state, in every state.
func TestPermittedMatchesTable(t *testing.T) {
	d := transitions.Default()
	for _, sc := range machineScenarios {
		if !sc.meantFor("unrestricted") {
			continue
		}
		t.Run(sc.state.String()+"_"+sc.name, func(t *testing.T) {
			m := sc.machine(t, transitions.Policy{})
			var want []states.EventKind
			for _, k := range states.EventKinds() {
				if slices.ContainsFunc(d.Rules(), func(r transitions.Rule) bool {
					return r.On == k && slices.Contains(r.From, sc.state)
				}) {
					want = append(want, k)
				}
			}
			if diff := cmp.Diff(want, m.Permitted()); diff != "" {
				t.Errorf("Permitted() in %v (-table +machine):\n%s", sc.state, diff)
			}
		})
	}
}

func TestNotPermittedError(t *testing.T) {
	m := reachByPath(t, transitions.Policy{}, onLoaded(recFresh, "v1"))
	_, err := m.Step(states.StoreReread{At: epoch, Generation: m.Extended().Generation})
	var npe *engine.NotPermittedError
	if !errors.As(err, &npe) {
		t.Fatalf("Step = %v, want a *NotPermittedError", err)
	}
	want := &engine.NotPermittedError{State: states.Fresh, Event: states.KindStoreReread}
	if diff := cmp.Diff(want, npe); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
	if got, want := err.Error(), "engine: event store_reread is not permitted in state fresh"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, engine.ErrNotPermitted) || errors.Is(err, engine.ErrStaleOutcome) {
		t.Errorf("errors.Is: ErrNotPermitted %v, ErrStaleOutcome %v; want true, false",
			errors.Is(err, engine.ErrNotPermitted), errors.Is(err, engine.ErrStaleOutcome))
	}
}

// TestStepRefusesStaleOutcomes: an outcome started for a generation that is
// no longer current changes nothing, whatever its kind and whatever the
// state, even where the table would otherwise accept it. Timers are the
// exception: the table decides what an old timer means.
func TestStepRefusesStaleOutcomes(t *testing.T) {
	for _, sc := range machineScenarios {
		if !sc.meantFor("unrestricted") {
			continue
		}
		probe := sc.machine(t, transitions.Policy{})
		g := probe.Extended().Generation
		for _, v := range eventCatalogue(probe.Extended()) {
			gen, isOutcome := states.OutcomeGeneration(v.ev)
			if !isOutcome || gen != g || v.ev.Kind() == states.KindWoke {
				continue
			}
			for _, other := range []uint64{g + 1, g - 1} {
				if other == g-1 && g == 0 {
					continue
				}
				old := withGeneration(v.ev, other)
				name := fmt.Sprintf("%s_%s/%s/%s/generation_%d",
					sc.state, sc.name, v.ev.Kind(), v.name, other)
				t.Run(name, func(t *testing.T) {
					m := sc.machine(t, transitions.Policy{})
					before := m.Extended()
					res, err := m.Step(old)
					if !errors.Is(err, engine.ErrStaleOutcome) {
						t.Fatalf("Step(%v for generation %d, current %d) = %v, want ErrStaleOutcome",
							old.Kind(), other, g, err)
					}
					if diff := cmp.Diff(engine.Result{}, res); diff != "" {
						t.Errorf("a refused step returned a result:\n%s", diff)
					}
					checkUnchanged(t, m, sc.state, before)
				})
			}
		}
	}

	t.Run("fresh/woke/older_generation_is_left_to_the_table", func(t *testing.T) {
		m := reachByPath(t, transitions.Policy{}, onLoaded(recFresh, "v1"), onLogin(recFresh))
		res := stepOK(t, m, states.Woke{At: muchLater, Generation: m.Extended().Generation - 1})
		if res.Rule != "woke_ignored" || m.State() != states.Fresh {
			t.Errorf("an old timer fired rule %s into %v; want woke_ignored in fresh", res.Rule, m.State())
		}
	})
}

// withGeneration returns a copy of the outcome ev stamped with gen.
func withGeneration(ev states.Event, gen uint64) states.Event {
	switch e := ev.(type) {
	case states.StoreReread:
		e.Generation = gen
		return e
	case states.RereadFailed:
		e.Generation = gen
		return e
	case states.RefreshSucceeded:
		e.Generation = gen
		return e
	case states.RefreshFailed:
		e.Generation = gen
		return e
	case states.RefreshRejected:
		e.Generation = gen
		return e
	case states.HostRefreshSucceeded:
		e.Generation = gen
		return e
	case states.HostRefreshFailed:
		e.Generation = gen
		return e
	case states.Persisted:
		e.Generation = gen
		return e
	case states.PersistFailed:
		e.Generation = gen
		return e
	case states.StoresCleared:
		e.Generation = gen
		return e
	case states.Woke:
		e.Generation = gen
		return e
	}
	panic(fmt.Sprintf("withGeneration: %T is not an outcome", ev))
}

// TestStepRejectsInvalidEvents: events no host or runner should produce are
// refused with ErrInvalidEvent, in any state, and change nothing.
func TestStepRejectsInvalidEvents(t *testing.T) {
	noKey := states.Record{Mode: states.ModeAPIKey}
	noRefresh := recFresh
	noRefresh.Tokens.RefreshToken = states.Secret{}
	noAccess := recHostFresh
	noAccess.Tokens.AccessToken = states.Secret{}
	noMode := recFresh
	noMode.Mode = states.ModeNone

	tests := []struct {
		name string
		ev   states.Event
	}{
		{"nil", nil},
		{"token_requested/zero_time", states.TokenRequested{}},
		{"unauthorized/zero_time", states.Unauthorized{Generation: 1}},
		{"persisted/zero_time", states.Persisted{Generation: 1}},
		{"login_requested/without_credential", states.LoginRequested{At: epoch}},
		{"login_requested/api_key_without_key", states.LoginRequested{At: epoch, Record: noKey}},
		{"login_requested/managed_without_refresh_token",
			states.LoginRequested{At: epoch, Record: noRefresh}},
		{"login_requested/host_tokens_without_access_token",
			states.LoginRequested{At: epoch, Record: noAccess}},
		{"login_requested/tokens_without_mode", states.LoginRequested{At: epoch, Record: noMode}},
		{"loaded/api_key_without_key", states.Loaded{At: epoch, Record: noKey}},
		{"loaded/managed_without_refresh_token", states.Loaded{At: epoch, Record: noRefresh}},
		{"store_reread/managed_without_refresh_token", states.StoreReread{At: epoch, Record: noRefresh}},
	}
	for _, sc := range machineScenarios {
		if !sc.meantFor("unrestricted") {
			continue
		}
		for _, tt := range tests {
			t.Run(sc.state.String()+"_"+sc.name+"/"+tt.name, func(t *testing.T) {
				m := sc.machine(t, transitions.Policy{})
				before := m.Extended()
				ev := tt.ev
				if sr, ok := ev.(states.StoreReread); ok {
					sr.Generation = before.Generation
					ev = sr
				}
				res, err := m.Step(ev)
				if !errors.Is(err, engine.ErrInvalidEvent) {
					t.Fatalf("Step = %v, want ErrInvalidEvent", err)
				}
				if errors.Is(err, engine.ErrNotPermitted) {
					t.Errorf("an invalid event is also reported as not permitted: %v", err)
				}
				if diff := cmp.Diff(engine.Result{}, res); diff != "" {
					t.Errorf("a refused step returned a result:\n%s", diff)
				}
				checkUnchanged(t, m, sc.state, before)
			})
		}
	}

	// An unreadable load carries no record to check.
	t.Run("loaded/unreadable_is_valid", func(t *testing.T) {
		m := engine.NewMachine(nil, transitions.Policy{})
		if _, err := m.Step(states.Loaded{At: epoch, Record: noKey, Err: errStoreUnreadable}); err != nil {
			t.Errorf("Step = %v, want the unreadable load accepted", err)
		}
	})
}

// TestRandomWalkKeepsInvariants drives machines through long seeded random
// walks over the event catalogue, with outcomes for older generations mixed
// in, and checks after every step what must always hold:
//
//   - the generation only increases;
//   - a refused step changes nothing and is refused for a stated reason;
//   - the failure reason is set exactly in failed_permanent;
//   - the record fits the state (none when logged out, an API key in
//     api_key, managed tokens in refreshing, host tokens in external_refresh);
//   - every command carries the generation the step left, a save carries the
//     record held, and a redemption the refresh token held, only while
//     refreshing;
//   - the machine agrees with the table read by hand.
func TestRandomWalkKeepsInvariants(t *testing.T) {
	const walks, length = 40, 300
	d := transitions.Default()
	for _, pol := range testPolicies {
		t.Run(pol.name, func(t *testing.T) {
			fired := map[string]bool{}
			for w := range walks {
				rng := rand.New(rand.NewPCG(uint64(w), 0x5eed))
				m := engine.NewMachine(nil, pol.policy)
				for i := range length {
					from, before := m.State(), m.Extended()
					cat := eventCatalogue(before)
					v := cat[rng.IntN(len(cat))]
					ev := v.ev
					stale := false
					// One outcome in five arrives for the generation before.
					g, ok := states.OutcomeGeneration(ev)
					if ok && ev.Kind() != states.KindWoke && g > 0 && rng.IntN(5) == 0 {
						ev, stale = withGeneration(ev, g-1), true
					}
					where := fmt.Sprintf("walk %d step %d: %v/%v/%s", w, i, from, ev.Kind(), v.name)

					res, err := m.Step(ev)
					want, ok, _ := firstRule(d, pol.policy, from, before, ev)
					switch {
					case stale:
						if !errors.Is(err, engine.ErrStaleOutcome) {
							t.Fatalf("%s for an older generation: %v, want ErrStaleOutcome", where, err)
						}
					case !ok:
						if !errors.Is(err, engine.ErrNotPermitted) {
							t.Fatalf("%s: %v, want ErrNotPermitted", where, err)
						}
					case err != nil:
						t.Fatalf("%s: %v", where, err)
					case res.Rule != want.ID:
						t.Fatalf("%s: rule %s fired, the table says %s", where, res.Rule, want.ID)
					}
					if err != nil {
						checkUnchanged(t, m, from, before)
						continue
					}
					fired[res.Rule] = true
					if msg := invariantBroken(m, before, res); msg != "" {
						t.Fatalf("%s (rule %s): %s", where, res.Rule, msg)
					}
				}
			}
			t.Logf("%d walks of %d steps fired %d/%d rules", walks, length, len(fired), len(d.Rules()))
		})
	}
}

// invariantBroken returns what is wrong with the machine after res, or "".
func invariantBroken(m *engine.Machine, before states.Extended, res engine.Result) string {
	s, x := m.State(), m.Extended()
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if x.Generation < before.Generation {
		bad("generation went back from %d to %d", before.Generation, x.Generation)
	}
	if res.Generation != x.Generation || res.To != s {
		bad("result says %v at generation %d, machine is %v at %d", res.To, res.Generation, s, x.Generation)
	}
	if (s == states.FailedPermanent) != (x.Failure != states.ReasonNone) {
		bad("failure reason %v in %v", x.Failure, s)
	}
	wantMode := map[states.State][]states.Mode{
		states.LoggedOut:       {states.ModeNone},
		states.APIKey:          {states.ModeAPIKey},
		states.Fresh:           {states.ModeManaged, states.ModeExternal},
		states.Stale:           {states.ModeManaged, states.ModeExternal},
		states.Refreshing:      {states.ModeManaged},
		states.ExternalRefresh: {states.ModeExternal},
	}
	if modes, ok := wantMode[s]; ok && !slices.Contains(modes, x.Record.Mode) {
		bad("a %v record in %v", x.Record.Mode, s)
	}
	if s == states.LoggedOut && !x.Record.IsZero() {
		bad("a credential is held while logged out")
	}
	for _, c := range res.Commands {
		switch c := c.(type) {
		case effects.PersistRecord:
			if c.Generation != x.Generation || !cmp.Equal(c.Record, x.Record) {
				bad("PersistRecord for generation %d does not save the record held", c.Generation)
			}
		case effects.RedeemRefreshToken:
			if c.Generation != x.Generation || !c.RefreshToken.Equal(x.Record.Tokens.RefreshToken) ||
				c.RefreshToken.IsZero() || s != states.Refreshing {
				bad("RedeemRefreshToken for generation %d in %v does not redeem the token held",
					c.Generation, s)
			}
		case effects.DeleteStores:
			if c.Generation != x.Generation {
				bad("DeleteStores for generation %d", c.Generation)
			}
		case effects.LockAndReread:
			if c.Generation != x.Generation || s != states.Refreshing {
				bad("LockAndReread for generation %d in %v", c.Generation, s)
			}
		case effects.AskHost:
			if c.Generation != x.Generation || s != states.ExternalRefresh {
				bad("AskHost for generation %d in %v", c.Generation, s)
			}
		case effects.WakeAt:
			if c.Generation != x.Generation {
				bad("WakeAt for generation %d", c.Generation)
			}
		case effects.NotifyObservers:
			if c.Generation != x.Generation {
				bad("NotifyObservers for generation %d", c.Generation)
			}
		}
	}
	return strings.Join(problems, "; ")
}

// TestStepIsDeterministic: two machines fed the same events end in the same
// state with the same extended state and commands.
func TestStepIsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	a := engine.NewMachine(nil, transitions.Policy{})
	b := engine.NewMachine(nil, transitions.Policy{})
	for i := range 500 {
		cat := eventCatalogue(a.Extended())
		ev := cat[rng.IntN(len(cat))].ev
		ra, ea := a.Step(ev)
		rb, eb := b.Step(ev)
		if diff := cmp.Diff(ra, rb); diff != "" || (ea == nil) != (eb == nil) {
			t.Fatalf("step %d (%v): results differ:\n%s", i, ev.Kind(), diff)
		}
		if a.State() != b.State() || !cmp.Equal(a.Extended(), b.Extended()) {
			t.Fatalf("step %d (%v): machines diverged", i, ev.Kind())
		}
	}
}

// TestExtendedIsACopy: changing what Extended returns does not change the
// machine.
func TestExtendedIsACopy(t *testing.T) {
	m := reachByPath(t, transitions.Policy{}, onLoaded(recFresh, "v1"))
	x := m.Extended()
	x.Generation = 99
	x.Record.Tokens.RefreshToken = states.NewSecret("planted")
	x.RetryAt = epoch.Add(time.Hour)
	got := m.Extended()
	if got.Generation == 99 || got.Record.Tokens.RefreshToken.Equal(x.Record.Tokens.RefreshToken) {
		t.Error("changing the copy changed the machine")
	}
}
