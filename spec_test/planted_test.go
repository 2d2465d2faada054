package spec_test

import (
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// TestPlantedBugIsCaught proves the Manager suite has teeth. It runs the
// suite on a copy of the table in which one rule is wrong: refresh_rejected
// leads to stale instead of failed_permanent, so a refresh token the
// provider refused for good counts as a passing failure and is presented
// again after the backoff. The suite must find it and shrink it to a short
// sequence; this test fails if it stops doing either.
//
// rapid runs under a stand-in for testing.T that records the failure
// instead of failing this test, with fail files off, so nothing is written
// to testdata/rapid.
func TestPlantedBugIsCaught(t *testing.T) {
	rules := transitions.Rules()
	planted := false
	for i := range rules {
		if rules[i].ID == "refresh_rejected" {
			rules[i].To, planted = states.Stale, true
		}
	}
	if !planted {
		t.Fatal("the rule to plant the bug in is gone; plant it in another")
	}
	table, err := transitions.New(states.LoggedOut, rules)
	if err != nil {
		t.Fatalf("the planted table is not valid: %v", err)
	}

	setFlag(t, "rapid.nofailfile", "true")
	setFlag(t, "rapid.failfile", "")
	setFlag(t, "rapid.checks", "100")
	setFlag(t, "rapid.shrinktime", "30s")
	tb := &recordingTB{name: "PlantedBug"}
	rapid.Check(tb, func(rt *rapid.T) {
		o := drawOptions(rt)
		o.table = table
		w := newWorld(rt, newCoverage(), o)
		rt.Repeat(w.actions())
	})

	if !tb.Failed() {
		t.Fatal("the suite did not catch the planted bug (a refresh refused for good leads to stale)")
	}
	report := tb.report()
	steps := counterexample(report)
	t.Logf("the suite caught the planted bug; shrunk counterexample (%d actions):\n  %s",
		len(steps), strings.Join(steps, "\n  "))
	switch {
	case len(steps) == 0:
		t.Fatalf("no counterexample in rapid's report:\n%s", report)
	case len(steps) > 3:
		t.Errorf("the counterexample shrank only to %d actions, want at most 3:\n%s", len(steps), report)
	case !strings.Contains(report, "refresh_rejected: refreshing -> stale"):
		t.Errorf("the report does not show the planted transition:\n%s", report)
	}
}

// counterexample returns the actions of the last history rapid reported:
// the shrunk failing sequence, start included.
func counterexample(report string) []string {
	i := strings.LastIndex(report, "history:\n")
	if i < 0 {
		return nil
	}
	var steps []string
	for _, line := range strings.Split(report[i+len("history:\n"):], "\n") {
		if !strings.HasPrefix(line, "  ") {
			break
		}
		steps = append(steps, strings.TrimSpace(line))
	}
	return steps
}

// setFlag sets one of rapid's flags for the rest of the test.
func setFlag(t *testing.T, name, value string) {
	t.Helper()
	f := flag.Lookup(name)
	if f == nil {
		t.Fatalf("no flag %s", name)
	}
	old := f.Value.String()
	if err := flag.Set(name, value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = flag.Set(name, old) })
}

// recordingTB is a rapid.TB that records what rapid reports instead of
// failing a test: it lets a test run a property whose failure it expects.
type recordingTB struct {
	name string

	mu     sync.Mutex
	log    []string
	failed bool
}

func (r *recordingTB) Helper()      {}
func (r *recordingTB) Name() string { return r.name }

func (r *recordingTB) Logf(format string, args ...any) { r.add(false, fmt.Sprintf(format, args...)) }
func (r *recordingTB) Log(args ...any)                 { r.add(false, fmt.Sprint(args...)) }
func (r *recordingTB) Errorf(format string, args ...any) {
	r.add(true, fmt.Sprintf(format, args...))
}
func (r *recordingTB) Error(args ...any) { r.add(true, fmt.Sprint(args...)) }

// Fatal and the skips are only ever called by a property itself, which
// runs on rapid's own T; rapid calls FailNow last, after reporting.
func (r *recordingTB) Fatalf(format string, args ...any) { r.add(true, fmt.Sprintf(format, args...)) }
func (r *recordingTB) Fatal(args ...any)                 { r.add(true, fmt.Sprint(args...)) }
func (r *recordingTB) FailNow()                          { r.add(true, "") }
func (r *recordingTB) Fail()                             { r.add(true, "") }
func (r *recordingTB) Skipf(format string, args ...any)  { r.add(false, fmt.Sprintf(format, args...)) }
func (r *recordingTB) Skip(args ...any)                  { r.add(false, fmt.Sprint(args...)) }
func (r *recordingTB) SkipNow()                          {}

func (r *recordingTB) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *recordingTB) add(fail bool, line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = r.failed || fail
	if line != "" {
		r.log = append(r.log, line)
	}
}

// report returns everything rapid said.
func (r *recordingTB) report() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.log, "\n")
}
