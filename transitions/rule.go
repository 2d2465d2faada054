package transitions

import (
	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/states"
)

// Stay as a rule's To means "remain in the state the rule fired from". It is
// how "allowed but ignored" is written: the event is permitted, and nothing
// changes but what the rule's Update says.
const Stay states.State = 255

// Input is what a guard or an update sees: the state and extended state
// before the event, the event, and the policy.
//
// Guards and updates are pure: they read Input and nothing else (no clock,
// no I/O). Ext must not be modified through the pointer.
type Input struct {
	State  states.State
	Ext    *states.Extended
	Event  states.Event
	Policy *Policy
}

// Guard is a named pure predicate. The zero Guard always passes; a rule
// without a guard is the fallback for its state and event.
type Guard struct {
	Name string
	Test func(Input) bool
}

// passes reports whether the guard allows the rule to fire.
func (g Guard) passes(in Input) bool { return g.Test == nil || g.Test(in) }

// Update is a named change to the extended state. It receives the input and
// the copy of the extended state that becomes current once the rule fires.
type Update struct {
	Name  string
	Apply func(in Input, next *states.Extended)
}

// Rule is one row of the table: in any state of From, on an event of kind
// On, if Guard passes, move To the target, apply Update, and emit commands of
// the kinds in Commands, in that order.
//
// Rules for the same state and event are tried in table order and the first
// whose guard passes wins, so a guarded rule must be followed by an unguarded
// fallback for the same state and event.
type Rule struct {
	ID       string
	From     []states.State
	On       states.EventKind
	Guard    Guard
	To       states.State
	Update   Update
	Commands []effects.Kind
}

// Target returns where the rule leads from state s.
func (r Rule) Target(s states.State) states.State {
	if r.To == Stay {
		return s
	}
	return r.To
}

// from reports whether the rule applies in state s.
func (r Rule) from(s states.State) bool {
	for _, f := range r.From {
		if f == s {
			return true
		}
	}
	return false
}
