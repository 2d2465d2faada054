package transitions

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"

	"github.com/looplab/fsm"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/states"
)

// Table is a validated, ordered set of rules with a declared initial state.
// It is immutable and safe for concurrent use.
type Table struct {
	initial states.State
	rules   []Rule
	// byPair lists, for each state and event kind, the indexes of the rules
	// that apply, in table order.
	byPair map[pair][]int
}

type pair struct {
	s states.State
	k states.EventKind
}

// Default returns the table credfsm runs on, starting in logged_out.
func Default() *Table { return defaultTable() }

var defaultTable = sync.OnceValue(func() *Table {
	t, err := New(states.LoggedOut, rules)
	if err != nil {
		// The built-in table is checked by the package's tests; reaching
		// this means the code was changed without running them.
		panic("transitions: the built-in table is invalid: " + err.Error())
	}
	return t
})

// Rules returns a copy of the default table's rules, for building variants
// (a test that plants a bug, a host with an extra rule) with New.
func Rules() []Rule { return cloneRules(rules) }

// cloneRules copies rules so that the copy can be edited freely. A shallow
// copy is not enough: the From and Commands slices would still be shared,
// and several rules share one From slice (the resting states, say), so
// editing one rule of a copy would edit rules of the original table.
func cloneRules(rs []Rule) []Rule {
	out := slices.Clone(rs)
	for i := range out {
		out[i].From = slices.Clone(out[i].From)
		out[i].Commands = slices.Clone(out[i].Commands)
	}
	return out
}

var ruleID = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// New validates rules and builds a table. Every problem found is reported,
// joined into one error:
//   - rule IDs are unique snake_case names (each becomes a looplab event);
//   - every state a rule names is one of the seven, and every event kind
//     known;
//   - for each state and event kind, guarded rules are followed by exactly
//     one unguarded fallback, which comes last (otherwise an event could
//     match nothing, or a rule could never fire);
//   - every state is reachable from the initial one;
//   - a rule runs at most one command that produces an outcome, redeems a
//     refresh token only while refreshing (when the store is locked and
//     re-read), and a rule that leaves a waiting state notifies the waiters
//     and, when it leaves refreshing, releases the store lock.
func New(initial states.State, rules []Rule) (*Table, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if !initial.Valid() {
		bad("initial state %v is not a state", initial)
	}
	t := &Table{initial: initial, rules: cloneRules(rules), byPair: map[pair][]int{}}
	seen := map[string]bool{}
	for i, r := range t.rules {
		name := r.ID
		if name == "" {
			name = fmt.Sprintf("#%d", i)
		}
		switch {
		case !ruleID.MatchString(r.ID):
			bad("rule %s: ID must be a snake_case name", name)
		case seen[r.ID]:
			bad("rule %s: duplicate ID", name)
		}
		seen[r.ID] = true
		if len(r.From) == 0 {
			bad("rule %s: no From state", name)
		}
		for _, s := range r.From {
			if !s.Valid() {
				bad("rule %s: unknown From state %v", name, s)
			}
		}
		if r.To != Stay && !r.To.Valid() {
			bad("rule %s: unknown To state %v", name, r.To)
		}
		if !r.On.Valid() {
			bad("rule %s: unknown event kind %d", name, uint8(r.On))
		}
		checkCommands(r, name, bad)
		for _, s := range r.From {
			if s.Valid() {
				t.byPair[pair{s, r.On}] = append(t.byPair[pair{s, r.On}], i)
			}
		}
	}
	t.checkFallbacks(bad)
	t.checkReachable(bad)
	if len(errs) > 0 {
		return nil, fmt.Errorf("transitions: invalid table: %w", errors.Join(errs...))
	}
	return t, nil
}

func checkCommands(r Rule, name string, bad func(string, ...any)) {
	outcomes := 0
	for _, k := range r.Commands {
		if k.HasOutcome() {
			outcomes++
		}
		if k == effects.KindRedeemRefreshToken &&
			!(len(r.From) == 1 && r.From[0] == states.Refreshing) {
			bad("rule %s: redeems a refresh token outside refreshing (the store must be "+
				"locked and re-read first)", name)
		}
	}
	if outcomes > 1 {
		bad("rule %s: runs %d commands with outcomes; at most one may run", name, outcomes)
	}
	for _, s := range r.From {
		if !s.Waiting() || r.Target(s) == s {
			continue
		}
		if !slices.Contains(r.Commands, effects.KindNotifyObservers) {
			bad("rule %s: leaves %v without NotifyObservers, so waiters would never wake", name, s)
		}
		if s == states.Refreshing && !slices.Contains(r.Commands, effects.KindReleaseLock) {
			bad("rule %s: leaves refreshing without ReleaseLock", name)
		}
	}
}

// checkFallbacks makes sure that, for each state and event kind with rules,
// exactly the last rule is unguarded.
func (t *Table) checkFallbacks(bad func(string, ...any)) {
	for _, s := range states.All() {
		for _, k := range states.EventKinds() {
			idx := t.byPair[pair{s, k}]
			for j, i := range idx {
				r := t.rules[i]
				last := j == len(idx)-1
				switch {
				case r.Guard.Test == nil && !last:
					bad("rule %s: unguarded in %v on %v but followed by rule %s, which can "+
						"never fire", r.ID, s, k, t.rules[idx[j+1]].ID)
				case r.Guard.Test != nil && last:
					bad("rule %s: the last rule for %v on %v is guarded (%s); add an "+
						"unguarded fallback", r.ID, s, k, r.Guard.Name)
				case r.Guard.Test != nil && r.Guard.Name == "":
					bad("rule %s: guard has no name", r.ID)
				}
			}
		}
	}
}

func (t *Table) checkReachable(bad func(string, ...any)) {
	if !t.initial.Valid() {
		return
	}
	reached := map[states.State]bool{t.initial: true}
	queue := []states.State{t.initial}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, k := range states.EventKinds() {
			for _, i := range t.byPair[pair{s, k}] {
				next := t.rules[i].Target(s)
				if next.Valid() && !reached[next] {
					reached[next] = true
					queue = append(queue, next)
				}
			}
		}
	}
	for _, s := range states.All() {
		if !reached[s] {
			bad("state %v is not reachable from %v", s, t.initial)
		}
	}
}

// Initial returns the declared initial state.
func (t *Table) Initial() states.State { return t.initial }

// Rules returns a copy of the table's rules in order.
func (t *Table) Rules() []Rule { return cloneRules(t.rules) }

// Rule returns a copy of the rule with the given ID.
func (t *Table) Rule(id string) (Rule, bool) {
	for _, r := range t.rules {
		if r.ID == id {
			return cloneRules([]Rule{r})[0], true
		}
	}
	return Rule{}, false
}

// Permits reports whether the table has rules for kind in state s.
func (t *Table) Permits(s states.State, kind states.EventKind) bool {
	return s.Valid() && len(t.byPair[pair{s, kind}]) > 0
}

// Select returns the rule that fires for in: the first rule for the state
// and event kind whose guard passes. ok is false when the table has no rule
// for that pair (the event is not permitted in that state).
func (t *Table) Select(in Input) (r Rule, ok bool) {
	if !in.State.Valid() {
		return Rule{}, false
	}
	for _, i := range t.byPair[pair{in.State, in.Event.Kind()}] {
		if t.rules[i].Guard.passes(in) {
			return t.rules[i], true
		}
	}
	return Rule{}, false
}

// FSMEvents compiles the table into looplab/fsm event descriptions: one event
// per rule, named by the rule's ID, so that guarded alternatives for the same
// state and trigger are distinct edges. A rule that stays put compiles to one
// self-loop per source state.
func (t *Table) FSMEvents() fsm.Events {
	var evs fsm.Events
	for _, r := range t.rules {
		if r.To != Stay {
			evs = append(evs, fsm.EventDesc{Name: r.ID, Src: stateNames(r.From), Dst: r.To.String()})
			continue
		}
		for _, s := range r.From {
			evs = append(evs, fsm.EventDesc{Name: r.ID, Src: []string{s.String()}, Dst: s.String()})
		}
	}
	return evs
}

func stateNames(ss []states.State) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.String()
	}
	return out
}
