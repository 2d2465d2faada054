// Package oauth speaks to OAuth providers: it redeems refresh tokens at a
// token endpoint (the Codex JSON protocol or plain RFC 6749 §6), classifies
// every outcome as success, transient or permanent, and reads the claims
// credfsm needs from id and access tokens.
//
// It never stores anything and never decides what to do next: the state
// machine does that from the classified outcome.
package oauth
