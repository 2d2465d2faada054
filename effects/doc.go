// Package effects holds the commands the state machine emits, as plain data,
// and the small runner that executes them.
//
// The runner reaches the outside world only through the interfaces defined
// here (Store, TokenEndpoint, HostRefresher, Clock); the storage and oauth
// packages satisfy them, and tests substitute doubles. Each command's outcome
// comes back as an event for the machine, so the runner never decides
// anything: it does what a rule said and reports what happened.
package effects
