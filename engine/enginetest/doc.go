// Package enginetest helps test code that embeds credfsm's engine, and the
// engine itself, with model-based tests in the style of pgregory.net/rapid.
//
// It provides:
//
//   - Model, a reference model of the credential machine: a second, naive
//     implementation of its documented behaviour, written as a plain switch
//     and independent of the transitions table, to compare an engine.Machine
//     (or, driven by a test's own simulation, an engine.Manager) with;
//   - generators for rapid: Events (events for a machine), Records and
//     Grants (credentials and refresh results), Jumps (clock moves),
//     RefreshOutcomeGen (the ways a redemption at an oauthtest.Server ends,
//     with the faults that provoke them) and HostOutcomeGen (the ways a host
//     answers);
//   - doubles that make a Manager's world deterministic and observable: a
//     Clock whose Advance returns once the timers it fired have run, a Wire
//     that records and can hold or cut requests to the token endpoint, a
//     FaultStore that fails or races saves in front of a real store, and
//     Logs that capture what the manager logs;
//   - a Checker of the invariants every Manager keeps, to call after each
//     step of a test.
//
// Nothing here talks to the network beyond loopback servers a test starts,
// or writes outside the directories a test gives it.
package enginetest
