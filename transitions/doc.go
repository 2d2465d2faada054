// Package transitions is the table of rules that says how a credential
// behaves: in which state, on which event, under which guard, the machine
// moves where and emits which commands. It is the only hand-written
// description of behaviour; the engine executes it, the statechart in
// docs/statechart.md is generated from it, and the tests check it.
//
// Everything here is pure. Guards and updates read the state, the event
// (which carries its own time) and the [Policy]; they never do I/O, never
// read a clock and never log.
package transitions
