package states

import "time"

// Extended is the extended state: everything the rules read besides the
// control state. The machine owns it; callers get copies.
type Extended struct {
	// Record is the current credential; zero when logged out.
	Record Record

	// Version is what the store held when the machine last read or wrote it.
	// Saves are compare-and-swap against it.
	Version Version

	// Generation changes whenever the credential changes (a login, a logout,
	// a load or re-read that finds a different credential, a refresh). Every
	// token handed out belongs to one generation, and a 401 or an outcome for
	// an older generation changes nothing.
	//
	// Invariant: it only ever increases.
	Generation uint64

	// FromEnv is true when the credential came from the environment
	// (CODEX_API_KEY). Such a credential is never persisted.
	FromEnv bool

	// Failure is why the credential failed for good. It is ReasonNone in
	// every state but FailedPermanent.
	Failure Reason

	// LastError describes the last transient failure (or the last refused
	// host refresh) in one secret-free line; empty after a success.
	LastError string

	// RetryAt is the earliest time the next refresh may be tried after a
	// transient failure; zero when no backoff is running.
	RetryAt time.Time

	// Attempts counts transient failures since the last success; the backoff
	// grows with it.
	Attempts int

	// Spent is the refresh token this process redeemed last, which the
	// provider has retired since. A store that still holds it holds nothing
	// newer than memory: it is never adopted, and never redeemed again.
	Spent Secret

	// RecoveryAt is when a 401 for the current tokens last started a
	// recovery (a refresh, or a request to the host), and RecoveryFrom the
	// generation that 401 refused. Tokens of a later generation refused
	// again soon after are not refreshed once more: a new token did not
	// help, so the refusal is about something else. Zero when no recovery
	// ran since the last login, or since a load found another credential.
	RecoveryAt   time.Time
	RecoveryFrom uint64

	// Unsaved is true when the tokens in Record could not be persisted (the
	// save failed or the store changed underneath). They are still served;
	// the next refresh persists its result as usual.
	Unsaved bool
}
