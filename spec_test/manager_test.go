package spec_test

import (
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// TestManagerMatchesModel is the suite's main claim: the real Manager, on
// the real file store, talking to a loopback token server and a host
// double, behaves like the reference model over random sequences of
// everything that can happen to a credential, and keeps the invariants
// after every step. It fails too if a run of the default size leaves a rule
// of the default table unfired.
func TestManagerMatchesModel(t *testing.T) {
	cov := newCoverage()
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t, cov, drawOptions(t))
		t.Repeat(w.actions())
	})
	cov.report(t, transitions.Default(), fullSize())
}

// fullSize reports whether the run is at least of the default size (100
// checks, not -short), the size at which every rule must fire.
func fullSize() bool {
	f := flag.Lookup("rapid.checks")
	if f == nil || testing.Short() {
		return false
	}
	n, err := strconv.Atoi(f.Value.String())
	return err == nil && n >= 100
}

// coverage records which rules fired and which states were entered, over
// every run of a test.
type coverage struct {
	mu      sync.Mutex
	rules   map[string]int
	states  map[string]bool
	actions map[string]int
	took    map[string]time.Duration
	steps   int
}

func newCoverage() *coverage {
	return &coverage{rules: map[string]int{}, states: map[string]bool{states.LoggedOut.String(): true},
		actions: map[string]int{}, took: map[string]time.Duration{}}
}

// ran counts an action that ran to its end.
func (c *coverage) ran(key string, took time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.actions[key]++
	c.took[key] += took
	c.steps++
}

func (c *coverage) fired(rule, to string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rules[rule]++
	c.states[to] = true
}

// missing returns the table's rules that never fired, in table order.
func (c *coverage) missing(table *transitions.Table) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range table.Rules() {
		if c.rules[r.ID] == 0 {
			out = append(out, r.ID)
		}
	}
	return out
}

// report logs the coverage and, when strict, fails t if a rule of table
// never fired or a state was never entered.
func (c *coverage) report(t *testing.T, table *transitions.Table, strict bool) {
	t.Helper()
	rules := table.Rules()
	missing := c.missing(table)
	c.mu.Lock()
	nstates := len(c.states)
	var counts []string
	for id, n := range c.rules {
		counts = append(counts, id+"="+strconv.Itoa(n))
	}
	var acts []string
	for key, n := range c.actions {
		acts = append(acts, fmt.Sprintf("%q=%d (%s)", key, n, c.took[key].Round(time.Millisecond)))
	}
	steps := c.steps
	c.mu.Unlock()
	sort.Strings(counts)
	sort.Strings(acts)
	t.Logf("coverage: %d/%d rules fired, %d/%d states entered, in %d steps", len(rules)-len(missing),
		len(rules), nstates, len(states.All()), steps)
	t.Logf("rules fired (times): %s", strings.Join(counts, " "))
	t.Logf("actions (times): %s", strings.Join(acts, " "))
	switch {
	case len(missing) > 0 && strict:
		t.Errorf("rules never fired: %s", strings.Join(missing, ", "))
	case len(missing) > 0:
		t.Logf("rules never fired (not an error below the default size): %s", strings.Join(missing, ", "))
	}
	if nstates < len(states.All()) && strict {
		var not []string
		for _, s := range states.All() {
			if !c.states[s.String()] {
				not = append(not, s.String())
			}
		}
		t.Errorf("states never entered: %s", strings.Join(not, ", "))
	}
}
