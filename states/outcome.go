package states

import (
	"errors"
	"fmt"
	"time"
)

// Version identifies what a store held when it was read or written. Stores
// choose the encoding (a content hash for files); the machine only compares
// versions for equality and hands them back on save, so that a save based on
// a stale read is refused instead of overwriting what another process wrote.
type Version string

const (
	// NoVersion is the version of an empty store: saving with it as the
	// expected version succeeds only if nothing is stored.
	NoVersion Version = ""
	// AnyVersion as the expected version saves unconditionally. Logins use
	// it: a person signing in replaces whatever is stored.
	AnyVersion Version = "*"
)

// Errors a store wraps so that layers above it can branch without knowing the
// backend.
var (
	// ErrUnreadable: a credential is stored but cannot be read or parsed.
	ErrUnreadable = errors.New("stored credential is unreadable")
	// ErrConflict: a compare-and-swap save found a different version.
	ErrConflict = errors.New("store changed since it was read")
	// ErrLockTimeout: the store's cross-process lock could not be taken in
	// time.
	ErrLockTimeout = errors.New("timed out waiting for the store lock")
)

// Grant is what a successful refresh returned. A field left empty was not in
// the response: the previous value is kept (a missing refresh token means the
// provider did not rotate it).
type Grant struct {
	IDToken      Secret
	AccessToken  Secret
	RefreshToken Secret

	// Claims are parsed from IDToken. When IDTokenErr is set they are not
	// valid and the previous id token and claims are kept, but the other
	// tokens are still used and persisted: a rotated refresh token must never
	// be dropped because of an unrelated parse problem.
	Claims     Claims
	IDTokenErr error

	// AccessExpiry is when the new access token expires; zero when unknown.
	AccessExpiry time.Time
}

// RefreshError classifies a failed redemption of a refresh token (or a failed
// request to the host for new tokens). It never contains a token: Detail is a
// truncated, sanitised excerpt of what the provider said.
type RefreshError struct {
	// Permanent is true when retrying cannot help; Reason then says why.
	Permanent bool
	Reason    Reason

	Status     int           // HTTP status, 0 when no response arrived
	Code       string        // the provider's error code, if any
	RetryAfter time.Duration // server hint for transient failures (Retry-After)
	Detail     string        // sanitised excerpt for people

	Err error // underlying cause, if any (never contains a token)
}

func (e *RefreshError) Error() string {
	class := "transient"
	if e.Permanent {
		class = "permanent (" + e.Reason.String() + ")"
	}
	msg := "refresh failed, " + class
	if e.Status != 0 {
		msg += fmt.Sprintf(", HTTP %d", e.Status)
	}
	if e.Code != "" {
		msg += ", code " + e.Code
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *RefreshError) Unwrap() error { return e.Err }

// StoreInfo describes a store for people: which backend holds the
// credential and how safely.
type StoreInfo struct {
	Kind     string // "file", "keyring", "auto", "ephemeral"
	Location string // a path or keyring entry name; never a secret

	// InsecureFallback is true when a store that should have used the OS
	// keyring fell back to a plaintext file.
	InsecureFallback bool
	// Note explains a fallback or another condition a person should know.
	Note string
}

// Removal reports what deleting the credential did in one backend.
type Removal struct {
	Backend string // e.g. "file /home/me/.codex/auth.json", "keyring", "ephemeral"
	Removed bool   // something was there and is gone
	Err     error  // the backend could not be cleared
}
