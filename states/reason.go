package states

import "fmt"

// Reason says why a credential failed for good. The zero value, ReasonNone,
// is the reason of every state but FailedPermanent.
type Reason uint8

const (
	ReasonNone Reason = iota
	// ReasonExpired: the provider says the refresh token has expired.
	ReasonExpired
	// ReasonReused: the refresh token was already redeemed, by another
	// process or machine holding a copy of it.
	ReasonReused
	// ReasonRevoked: the refresh token was revoked (a sign-out elsewhere, a
	// password change, an administrator).
	ReasonRevoked
	// ReasonInvalidGrant: the provider answered RFC 6749 invalid_grant.
	ReasonInvalidGrant
	// ReasonClientRejected: the provider refused the client itself
	// (invalid_client, unauthorized_client): a configuration problem.
	ReasonClientRejected
	// ReasonUnknown: the provider refused the refresh with a 401 and no code
	// credfsm knows.
	ReasonUnknown
	// ReasonUnreadableStore: the store holds something that cannot be read
	// or parsed. It is not treated as a logout, so nothing is overwritten.
	ReasonUnreadableStore
	// ReasonRestricted: the credential violates a login restriction (a forced
	// login method or a forced workspace).
	ReasonRestricted

	numReasons = iota
)

var reasonNames = [numReasons]string{
	ReasonNone:            "none",
	ReasonExpired:         "refresh_token_expired",
	ReasonReused:          "refresh_token_reused",
	ReasonRevoked:         "refresh_token_revoked",
	ReasonInvalidGrant:    "invalid_grant",
	ReasonClientRejected:  "client_rejected",
	ReasonUnknown:         "refresh_refused",
	ReasonUnreadableStore: "unreadable_store",
	ReasonRestricted:      "restricted",
}

var reasonText = [numReasons]string{
	ReasonNone:            "no failure",
	ReasonExpired:         "the refresh token has expired",
	ReasonReused:          "the refresh token was already used, probably by another process or machine sharing this login",
	ReasonRevoked:         "the refresh token was revoked",
	ReasonInvalidGrant:    "the provider no longer accepts the refresh token (invalid_grant)",
	ReasonClientRejected:  "the provider refused this client (check the client id and secret)",
	ReasonUnknown:         "the provider refused the refresh for a reason it did not name",
	ReasonUnreadableStore: "the stored credential cannot be read",
	ReasonRestricted:      "the credential violates a login restriction",
}

var reasonNext = [numReasons]string{
	ReasonNone:            "",
	ReasonExpired:         "sign in again",
	ReasonReused:          "sign in again; give each machine its own login instead of copying auth.json",
	ReasonRevoked:         "sign in again",
	ReasonInvalidGrant:    "sign in again",
	ReasonClientRejected:  "fix the client configuration, then sign in again",
	ReasonUnknown:         "sign in again",
	ReasonUnreadableStore: "repair or remove the stored credential, then sign in again",
	ReasonRestricted:      "sign in with a credential that the configured restriction allows",
}

// String returns the reason's snake_case name.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Describe says in a sentence what happened.
func (r Reason) Describe() string {
	if r < numReasons {
		return reasonText[r]
	}
	return r.String()
}

// NextStep says what a person should do about it.
func (r Reason) NextStep() string {
	if r < numReasons {
		return reasonNext[r]
	}
	return "sign in again"
}

// MarshalText encodes the reason as its name.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// ParseReason maps a name back to its reason.
func ParseReason(name string) (Reason, error) {
	for i, n := range reasonNames {
		if n == name {
			return Reason(i), nil
		}
	}
	return ReasonNone, fmt.Errorf("states: unknown failure reason %q", name)
}
