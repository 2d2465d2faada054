package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/looplab/fsm"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// Machine is the pure core: one credential's control state, held in a
// looplab/fsm compiled from the transitions table, plus the extended state
// the rules read. Step feeds it one event and returns the transition taken
// and the commands to run, in order; it does no I/O and reads no clock.
//
// A Machine is not safe for concurrent use. [Manager] serialises access.
type Machine struct {
	table  *transitions.Table
	policy transitions.Policy
	fsm    *fsm.FSM
	ext    states.Extended
}

// Result is what one step did.
type Result struct {
	Rule     string // the rule that fired
	Event    states.EventKind
	From, To states.State
	// Commands must run in this order: a save comes before anything that
	// hands out the tokens it saves.
	Commands []effects.Command
	// Generation is the generation after the step.
	Generation uint64
}

// Errors returned by Step.
var (
	// ErrNotPermitted: the table has no rule for the event in the current
	// state. The machine is unchanged.
	ErrNotPermitted = errors.New("engine: event not permitted in this state")
	// ErrStaleOutcome: an outcome arrived for a generation that is no longer
	// current. It changes nothing.
	ErrStaleOutcome = errors.New("engine: outcome for an older generation")
	// ErrInvalidEvent: the event is malformed (for example a login without a
	// credential). The machine is unchanged.
	ErrInvalidEvent = errors.New("engine: invalid event")
)

// NotPermittedError names the state and the event that was refused.
type NotPermittedError struct {
	State states.State
	Event states.EventKind
}

func (e *NotPermittedError) Error() string {
	return fmt.Sprintf("engine: event %s is not permitted in state %s", e.Event, e.State)
}

// Is makes errors.Is(err, ErrNotPermitted) true.
func (e *NotPermittedError) Is(target error) bool { return target == ErrNotPermitted }

// NewMachine returns a machine at the table's initial state, with an empty
// extended state. A nil table means transitions.Default().
func NewMachine(t *transitions.Table, p transitions.Policy) *Machine {
	if t == nil {
		t = transitions.Default()
	}
	return &Machine{
		table:  t,
		policy: p,
		// No callbacks: the table, not looplab, decides effects. Without
		// callbacks none of looplab's re-entrancy, cancellation or async
		// traps can occur.
		fsm: fsm.NewFSM(t.Initial().String(), t.FSMEvents(), nil),
	}
}

// State returns the current control state.
func (m *Machine) State() states.State {
	s, err := states.ParseState(m.fsm.Current())
	if err != nil {
		// looplab only ever holds names compiled from the table.
		panic("engine: looplab holds an unknown state: " + err.Error())
	}
	return s
}

// Extended returns a copy of the extended state.
func (m *Machine) Extended() states.Extended { return m.ext }

// Table returns the table the machine runs.
func (m *Machine) Table() *transitions.Table { return m.table }

// Policy returns the policy the rules read.
func (m *Machine) Policy() transitions.Policy { return m.policy }

// Permitted returns the event kinds the current state has rules for, sorted.
// Whether one of them changes anything depends on guards; this is the set
// that Step will not refuse with ErrNotPermitted.
func (m *Machine) Permitted() []states.EventKind {
	var out []states.EventKind
	for _, id := range m.fsm.AvailableTransitions() {
		if r, ok := m.table.Rule(id); ok && !slices.Contains(out, r.On) {
			out = append(out, r.On)
		}
	}
	slices.Sort(out)
	return out
}

// Step applies one event. It picks the first rule for the current state and
// the event's kind whose guard passes, moves looplab/fsm along that rule's
// edge, applies the rule's update, and returns the rule's commands.
//
// It refuses, changing nothing: an event with no rule in this state
// (*NotPermittedError), an outcome for an older generation
// (ErrStaleOutcome; timers are the exception, the table decides those), and
// a malformed event (ErrInvalidEvent).
func (m *Machine) Step(ev states.Event) (Result, error) {
	if err := validate(ev); err != nil {
		return Result{}, err
	}
	if gen, ok := states.OutcomeGeneration(ev); ok && ev.Kind() != states.KindWoke &&
		gen != m.ext.Generation {
		return Result{}, fmt.Errorf("%w: %s for generation %d, current is %d",
			ErrStaleOutcome, ev.Kind(), gen, m.ext.Generation)
	}

	from := m.State()
	in := transitions.Input{State: from, Ext: &m.ext, Event: ev, Policy: &m.policy}
	rule, ok := m.table.Select(in)
	if !ok {
		return Result{}, &NotPermittedError{State: from, Event: ev.Kind()}
	}

	// The context cannot be cancelled: a transition is a pure step and must
	// never be abandoned half-way (a cancelled context would also leave
	// looplab stuck in a transition).
	if err := m.fsm.Event(context.Background(), rule.ID); err != nil {
		var noop fsm.NoTransitionError
		if !errors.As(err, &noop) || noop.Err != nil {
			return Result{}, fmt.Errorf("engine: looplab refused rule %s from %s: %w", rule.ID, from, err)
		}
		// A self-loop: looplab reports NoTransitionError, which is success.
	}

	next, cmds := transitions.Apply(rule, in)
	m.ext = next
	return Result{
		Rule:       rule.ID,
		Event:      ev.Kind(),
		From:       from,
		To:         rule.Target(from),
		Commands:   cmds,
		Generation: next.Generation,
	}, nil
}

// validate rejects events that no host or runner should produce.
func validate(ev states.Event) error {
	if ev == nil {
		return fmt.Errorf("%w: nil event", ErrInvalidEvent)
	}
	if !ev.Kind().Valid() {
		return fmt.Errorf("%w: unknown kind %d", ErrInvalidEvent, uint8(ev.Kind()))
	}
	if ev.Time().IsZero() {
		return fmt.Errorf("%w: %s has no time", ErrInvalidEvent, ev.Kind())
	}
	switch e := ev.(type) {
	case states.LoginRequested:
		if err := validRecord(e.Record); err != nil {
			return fmt.Errorf("%w: login: %v", ErrInvalidEvent, err)
		}
	case states.Loaded:
		if e.FromEnv && e.Record.Mode != states.ModeAPIKey {
			return fmt.Errorf("%w: loaded: only an API key can come from the environment", ErrInvalidEvent)
		}
		if e.Err == nil && !e.Record.IsZero() {
			if err := validRecord(e.Record); err != nil {
				return fmt.Errorf("%w: loaded: %v", ErrInvalidEvent, err)
			}
		}
	case states.StoreReread:
		if !e.Record.IsZero() {
			if err := validRecord(e.Record); err != nil {
				return fmt.Errorf("%w: store reread: %v", ErrInvalidEvent, err)
			}
		}
	}
	return nil
}

// validRecord checks that a record holds what its mode needs.
func validRecord(r states.Record) error {
	switch r.Mode {
	case states.ModeAPIKey:
		if r.APIKey.IsZero() {
			return errors.New("API-key credential without a key")
		}
	case states.ModeManaged:
		if r.Tokens.AccessToken.IsZero() || r.Tokens.RefreshToken.IsZero() {
			return errors.New("managed credential needs an access token and a refresh token")
		}
	case states.ModeExternal:
		if r.Tokens.AccessToken.IsZero() {
			return errors.New("host-managed credential without an access token")
		}
	default:
		return fmt.Errorf("credential has no mode (%v)", r.Mode)
	}
	return nil
}
