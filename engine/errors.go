package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/credfsm/credfsm/states"
)

// Sentinel errors of the Manager. Errors it returns wrap one of them, so a
// host can branch with errors.Is; the typed errors below carry the detail.
var (
	// ErrLoggedOut: no credential is known. Sign in first.
	ErrLoggedOut = errors.New("engine: not signed in")
	// ErrPermanent: the credential failed for good (see *PermanentError for
	// the reason). Sign in again. When a program that does not take the
	// store's lock (the Codex CLI) shares the home, a refused refresh token
	// may already have been replaced in the store: Reload adopts the new
	// credential if so.
	ErrPermanent = errors.New("engine: the credential cannot be used any more")
	// ErrTransient: a refresh failed in a way that may pass (see
	// *TransientError for when to retry). Token returns it only once the
	// access token has expired; until then it serves that token. Refresh
	// and Observe return it whatever the access token's expiry.
	ErrTransient = errors.New("engine: the credential cannot be refreshed right now")
	// ErrKeyRejected: the API refused the API key. Keys are never refreshed.
	ErrKeyRejected = errors.New("engine: the API refused the API key")
	// ErrRefusedAgain: the API refused tokens that a refresh, made because
	// it had refused their predecessors, brought moments ago. A new token
	// did not help, so the refusal is likely about something a token's age
	// does not change (a scope, a revoked grant, the account's access);
	// the manager does not refresh again for Config.RecoveryCooldown.
	ErrRefusedAgain = errors.New("engine: the API refused the tokens a refresh had just brought")
	// ErrClosed: the Manager was closed.
	ErrClosed = errors.New("engine: manager closed")
	// ErrInternal: the machine reached a situation its table does not cover.
	// It is a bug in the table; the error says which state and event.
	ErrInternal = errors.New("engine: internal error")
)

// PermanentError says why the credential failed for good and what to do.
type PermanentError struct {
	Reason states.Reason
	// Detail is what the provider or the store said, sanitised; may be "".
	Detail string
	// Err is the error behind Detail, when the failure carried one (the
	// provider's *states.RefreshError, a store's error such as
	// fs.ErrPermission), for errors.Is and errors.As. It holds no secret.
	Err error
}

func (e *PermanentError) Error() string {
	msg := fmt.Sprintf("engine: %s; %s", e.Reason.Describe(), e.Reason.NextStep())
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrPermanent) true.
func (e *PermanentError) Is(target error) bool { return target == ErrPermanent }

// Unwrap returns the cause, if known.
func (e *PermanentError) Unwrap() error { return e.Err }

// TransientError says that the tokens could not be refreshed for now, and
// when the next refresh may be tried.
type TransientError struct {
	RetryAt time.Time // zero when unknown
	Detail  string    // the last failure, sanitised
	// Err is the error behind Detail, when the failure carried one (a
	// store's fs.ErrPermission, states.ErrLockTimeout, a *states.RefreshError
	// ...), for errors.Is and errors.As. Like Detail, it holds no secret.
	Err error
}

func (e *TransientError) Error() string {
	msg := "engine: the tokens could not be refreshed for now"
	if !e.RetryAt.IsZero() {
		msg += "; next attempt after " + e.RetryAt.UTC().Format(time.RFC3339)
	}
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrTransient) true.
func (e *TransientError) Is(target error) bool { return target == ErrTransient }

// Unwrap returns the cause, if known.
func (e *TransientError) Unwrap() error { return e.Err }
