package states

import "fmt"

// State is a control state of the credential machine. The zero value is
// LoggedOut, the machine's declared initial state.
//
// A state is terminal when nothing the machine does on its own (time passing,
// a refresh, a 401) can leave it: only a person or another process acting on
// the store (a login, a logout, a reload that finds a different credential)
// moves the machine on.
type State uint8

const (
	// LoggedOut means no credential is known: nothing is stored, or a logout
	// cleared it. Token requests fail with a "sign in" error.
	// Terminal: only a login or a load that finds a credential leaves it.
	LoggedOut State = iota

	// APIKey means the credential is a static API key. It is served as is,
	// never refreshed; a 401 for it is reported to the host as a refused key
	// and changes nothing. Not terminal.
	APIKey

	// Fresh means OAuth tokens are held and the access token is outside the
	// staleness window: it is served without any I/O. Time passing moves the
	// machine to Stale; a 401 for the current token starts a refresh.
	// Not terminal.
	Fresh

	// Stale means OAuth tokens are held but the access token is within the
	// skew window of its expiry (or, with no known expiry, the last refresh
	// is too old). The next token request starts a refresh unless a backoff
	// after a transient failure is still running; meanwhile an access token
	// that has not yet expired is still served. Not terminal.
	Stale

	// Refreshing means one redemption of the refresh token is under way: the
	// store is locked and re-read, the token endpoint is called, and the
	// result is persisted. Token requests and 401s wait for its outcome and
	// start nothing new. Not terminal; it always ends in Fresh, Stale,
	// APIKey, LoggedOut or FailedPermanent.
	Refreshing

	// ExternalRefresh means the embedding host has been asked for new
	// host-managed tokens. Like Refreshing, callers wait for its one outcome.
	// Not terminal.
	ExternalRefresh

	// FailedPermanent means the credential cannot be used again: the provider
	// refused the refresh token for good, the store could not be read, or a
	// login restriction was violated. The reason is kept in
	// [Extended.Failure]. Nothing touches the network in this state.
	// Terminal: only a login, a logout, or a load that finds a different
	// credential leaves it.
	FailedPermanent

	numStates = iota
)

var stateNames = [numStates]string{
	LoggedOut:       "logged_out",
	APIKey:          "api_key",
	Fresh:           "fresh",
	Stale:           "stale",
	Refreshing:      "refreshing",
	ExternalRefresh: "external_refresh",
	FailedPermanent: "failed_permanent",
}

var stateSummaries = [numStates]string{
	LoggedOut:       "no credential; sign in to continue",
	APIKey:          "a static API key, served as is and never refreshed",
	Fresh:           "OAuth tokens, served without any I/O",
	Stale:           "OAuth tokens near expiry; the next request refreshes them",
	Refreshing:      "one refresh is under way; callers wait for it",
	ExternalRefresh: "the host was asked for new tokens; callers wait for it",
	FailedPermanent: "the credential cannot be used again; sign in again",
}

// Summary describes the state in one line, for status displays and diagrams.
func (s State) Summary() string {
	if s.Valid() {
		return stateSummaries[s]
	}
	return s.String()
}

// All returns the seven states in declaration order.
func All() []State {
	all := make([]State, numStates)
	for i := range all {
		all[i] = State(i)
	}
	return all
}

// String returns the state's snake_case name, as used in diagrams, traces and
// the command line.
func (s State) String() string {
	if s.Valid() {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Valid reports whether s is one of the seven states.
func (s State) Valid() bool { return s < numStates }

// Terminal reports whether only an outside action (login, logout, a load that
// finds a different credential) can leave s. See the doc comment on [State].
func (s State) Terminal() bool { return s == LoggedOut || s == FailedPermanent }

// Waiting reports whether s is a state in which an outcome is awaited and
// callers wait for it instead of starting work of their own.
func (s State) Waiting() bool { return s == Refreshing || s == ExternalRefresh }

// MarshalText encodes the state as its name.
func (s State) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("states: invalid state %d", uint8(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText decodes a state name.
func (s *State) UnmarshalText(b []byte) error {
	v, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseState returns the state with the given snake_case name.
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if n == name {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("states: unknown state %q (want one of %v)", name, stateNames)
}
