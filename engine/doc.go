// Package engine runs the credential state machine.
//
// [Machine] is the pure core, in the manner of a raft node's Ready loop: it
// holds the control state (in a looplab/fsm compiled from the transitions
// table) and the extended state, and turns one event into one transition
// plus the commands to run. It never does I/O, never reads a clock and never
// logs.
//
// [Manager] is what hosts embed. It owns a Machine and an effects runner, and
// performs the duties a host loop would:
//
//  1. stamp each input (a token request, a 401, a login) with the time and
//     step the machine with it, one event at a time;
//  2. run the commands of the step in their order, on the runner, under the
//     manager's own lifetime rather than the caller's: a caller that gives up
//     stops waiting but does not abort a refresh others wait for;
//  3. feed each command's outcome back as the next event, until the machine
//     rests;
//  4. publish an immutable snapshot after each step, which the hot path
//     (Token in fresh) reads without locks or allocation.
//
// Because the machine permits only one refresh at a time (further token
// requests and 401s in refreshing just wait), coalescing needs no extra
// mechanism: it falls out of the states.
package engine
