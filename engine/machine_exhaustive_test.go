package engine_test

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// outcome is the part of a Step result that says which rule fired and where
// it led.
type outcome struct {
	Rule     string
	Event    states.EventKind
	From, To states.State
}

// edgeID names one arrow of the table: a rule seen from one source state.
type edgeID struct {
	Rule string
	From states.State
}

// TestStepFollowsTable is the exhaustive state × event test. For every
// scenario (each of the seven states, in the variants the guards tell apart,
// reached by real events from the initial state), under every policy, and
// for every event of the catalogue (every kind, with payloads for each guard
// branch), it steps a new machine and checks the step against the table
// read by hand:
//
//   - no rule for the state and kind: Step refuses with a *NotPermittedError
//     naming both, which is ErrNotPermitted, and the machine is unchanged;
//   - otherwise the first rule whose guard passes fires, the machine ends in
//     rule.Target(from), and its extended state and commands are the rule's.
//
// It fails if some state and kind were never tried, or if some edge of the
// table (rule and source state) never fired, which would mean a guard branch
// went unexercised.
func TestStepFollowsTable(t *testing.T) {
	d := transitions.Default()
	tried := map[[2]int]bool{}
	fired := map[edgeID]int{}
	steps := 0

	for _, pol := range testPolicies {
		for _, sc := range machineScenarios {
			if !sc.meantFor(pol.name) {
				continue
			}
			t.Run(pol.name+"/"+sc.state.String()+"_"+sc.name, func(t *testing.T) {
				probe := sc.machine(t, pol.policy)
				for _, v := range eventCatalogue(probe.Extended()) {
					t.Run(fmt.Sprintf("%s/%s/%s", sc.state, v.ev.Kind(), v.name), func(t *testing.T) {
						m := sc.machine(t, pol.policy)
						from, before := m.State(), m.Extended()
						tried[[2]int{int(from), int(v.ev.Kind())}] = true
						steps++

						want, ok, hasRules := firstRule(d, pol.policy, from, before, v.ev)
						if hasRules && !ok {
							t.Fatalf("the table has rules for %v on %v but none matched; "+
								"a fallback is missing", from, v.ev.Kind())
						}
						res, err := m.Step(v.ev)
						if !ok {
							checkNotPermitted(t, m, from, before, v.ev.Kind(), res, err)
							return
						}
						if err != nil {
							t.Fatalf("Step refused an event the table permits (rule %s): %v", want.ID, err)
						}
						fired[edgeID{res.Rule, from}]++

						got := outcome{res.Rule, res.Event, res.From, res.To}
						wantOut := outcome{want.ID, v.ev.Kind(), from, want.Target(from)}
						if diff := cmp.Diff(wantOut, got); diff != "" {
							t.Fatalf("Step took the wrong rule (-table +step):\n%s", diff)
						}
						if m.State() != want.Target(from) {
							t.Errorf("State() = %v after rule %s, want %v",
								m.State(), want.ID, want.Target(from))
						}

						in := transitions.Input{State: from, Ext: &before, Event: v.ev, Policy: &pol.policy}
						wantExt, wantCmds := transitions.Apply(want, in)
						if diff := cmp.Diff(wantExt, m.Extended()); diff != "" {
							t.Errorf("extended state after rule %s (-rule +machine):\n%s", want.ID, diff)
						}
						if diff := cmp.Diff(wantCmds, res.Commands); diff != "" {
							t.Errorf("commands of rule %s (-rule +step):\n%s", want.ID, diff)
						}
						if got := commandKinds(res.Commands); !kindsFollow(got, want.Commands) {
							t.Errorf("command kinds %v do not follow the rule's %v", got, want.Commands)
						}
						if res.Generation != m.Extended().Generation || res.Generation < before.Generation {
							t.Errorf("generation %d -> %d (result says %d); it may only increase",
								before.Generation, m.Extended().Generation, res.Generation)
						}
					})
				}
			})
		}
	}

	var untried []string
	for _, s := range states.All() {
		for _, k := range states.EventKinds() {
			if !tried[[2]int{int(s), int(k)}] {
				untried = append(untried, s.String()+"/"+k.String())
			}
		}
	}
	var unfired []string
	edges := d.Edges()
	for _, e := range edges {
		if fired[edgeID{e.Rule.ID, e.From}] == 0 {
			unfired = append(unfired, e.Rule.ID+" from "+e.From.String())
		}
	}
	t.Logf("exhaustive: %d steps; %d/%d state×event pairs tried; %d/%d edges fired",
		steps, len(tried), len(states.All())*len(states.EventKinds()), len(edges)-len(unfired), len(edges))
	if len(untried) > 0 {
		t.Errorf("state×event pairs never tried:\n  %s", strings.Join(untried, "\n  "))
	}
	if len(unfired) > 0 {
		t.Errorf("edges that never fired (a guard branch without a test):\n  %s",
			strings.Join(unfired, "\n  "))
	}
}

// checkNotPermitted asserts that Step refused an event the table has no rule
// for, naming the state and the event, and changed nothing.
func checkNotPermitted(t *testing.T, m *engine.Machine, from states.State, before states.Extended,
	kind states.EventKind, res engine.Result, err error) {
	t.Helper()
	if !errors.Is(err, engine.ErrNotPermitted) {
		t.Fatalf("Step(%v) in %v = %v, want ErrNotPermitted", kind, from, err)
	}
	var npe *engine.NotPermittedError
	if !errors.As(err, &npe) {
		t.Fatalf("error %v is not a *NotPermittedError", err)
	}
	if npe.State != from || npe.Event != kind {
		t.Errorf("NotPermittedError names %v/%v, want %v/%v", npe.State, npe.Event, from, kind)
	}
	if !strings.Contains(err.Error(), from.String()) || !strings.Contains(err.Error(), kind.String()) {
		t.Errorf("error %q does not name the state and the event", err)
	}
	if diff := cmp.Diff(engine.Result{}, res); diff != "" {
		t.Errorf("a refused step returned a result:\n%s", diff)
	}
	checkUnchanged(t, m, from, before)
}

// checkUnchanged asserts the machine is still in state with ext.
func checkUnchanged(t *testing.T, m *engine.Machine, state states.State, ext states.Extended) {
	t.Helper()
	if m.State() != state {
		t.Errorf("state changed from %v to %v", state, m.State())
	}
	if diff := cmp.Diff(ext, m.Extended()); diff != "" {
		t.Errorf("extended state changed (-before +after):\n%s", diff)
	}
}

func commandKinds(cmds []effects.Command) []effects.Kind {
	out := make([]effects.Kind, len(cmds))
	for i, c := range cmds {
		out[i] = c.Kind()
	}
	return out
}

// kindsFollow reports whether got is want with, at most, WakeAt left out:
// a WakeAt is dropped when the tokens never go stale by time alone.
func kindsFollow(got, want []effects.Kind) bool {
	if slices.Equal(got, want) {
		return true
	}
	return slices.Equal(got, slices.DeleteFunc(slices.Clone(want), func(k effects.Kind) bool {
		return k == effects.KindWakeAt
	}))
}

// TestEveryRuleFiresFromInitialState explores the machine breadth-first from
// its initial state: each configuration reached (state plus the facts of the
// extended state that guards read) is stepped with every event of the
// catalogue, under each policy. Every state must be reached and every rule
// of the table must fire at least once on some path from the start.
func TestEveryRuleFiresFromInitialState(t *testing.T) {
	const maxDepth = 8
	d := transitions.Default()
	fired := map[string]int{}
	reached := map[states.State]int{}

	for _, pol := range testPolicies {
		polFired := map[string]bool{}
		seen := map[string]bool{}
		start := engine.NewMachine(nil, pol.policy)
		seen[configuration(start, pol.policy)] = true
		queue := [][]states.Event{nil}
		configurations, steps := 0, 0

		for len(queue) > 0 {
			path := queue[0]
			queue = queue[1:]
			configurations++
			m := replay(t, pol.policy, path)
			reached[m.State()]++

			for _, v := range eventCatalogue(m.Extended()) {
				next := replay(t, pol.policy, path)
				res, err := next.Step(v.ev)
				steps++
				if err != nil {
					if !errors.Is(err, engine.ErrNotPermitted) {
						t.Errorf("%v after %d steps: %v/%s: %v",
							m.State(), len(path), v.ev.Kind(), v.name, err)
					}
					continue
				}
				fired[res.Rule]++
				polFired[res.Rule] = true
				key := configuration(next, pol.policy)
				if !seen[key] && len(path) < maxDepth {
					seen[key] = true
					queue = append(queue, append(slices.Clone(path), v.ev))
				}
			}
		}
		t.Logf("%s: %d configurations, %d steps, %d/%d rules fired",
			pol.name, configurations, steps, len(polFired), len(d.Rules()))
	}

	var unreached []string
	for _, s := range states.All() {
		if reached[s] == 0 {
			unreached = append(unreached, s.String())
		}
	}
	var unfired, counts []string
	for _, r := range d.Rules() {
		if fired[r.ID] == 0 {
			unfired = append(unfired, r.ID)
		}
		counts = append(counts, fmt.Sprintf("%s=%d", r.ID, fired[r.ID]))
	}
	sort.Strings(counts)
	t.Logf("path coverage: %d/%d states reached, %d/%d rules fired", len(states.All())-len(unreached),
		len(states.All()), len(d.Rules())-len(unfired), len(d.Rules()))
	t.Logf("firings per rule: %s", strings.Join(counts, " "))
	if len(unreached) > 0 {
		t.Errorf("states never reached from %v: %s", d.Initial(), strings.Join(unreached, ", "))
	}
	if len(unfired) > 0 {
		t.Errorf("rules that never fired on any path from %v: %s", d.Initial(), strings.Join(unfired, ", "))
	}
}

// replay builds a machine and steps it through path, which was accepted
// before; the machine is deterministic, so it ends where it did then.
func replay(t *testing.T, p transitions.Policy, path []states.Event) *engine.Machine {
	t.Helper()
	m := engine.NewMachine(nil, p)
	for _, ev := range path {
		stepOK(t, m, ev)
	}
	return m
}

// configuration abstracts a machine to what its guards can tell apart, so
// that the exploration visits each kind of situation once.
func configuration(m *engine.Machine, p transitions.Policy) string {
	x := m.Extended()
	r := x.Record
	return fmt.Sprint(m.State(), r.Mode, r.AccountID(), x.Failure, x.FromEnv, x.Unsaved,
		!x.RetryAt.IsZero(), x.Generation > 0, p.Stale(r, epoch), transitions.Expired(r, epoch),
		r.AccessExpiry.IsZero(), r.LastRefresh.IsZero(),
		!x.RecoveryAt.IsZero(), x.Generation > x.RecoveryFrom)
}
