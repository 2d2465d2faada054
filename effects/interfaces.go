package effects

import (
	"context"
	"time"

	"github.com/credfsm/credfsm/states"
)

// Store is where a credential lives. The storage package provides the
// backends; tests may provide doubles. Implementations must be safe for
// concurrent use.
type Store interface {
	// Load reads the stored record. When nothing is stored it returns the
	// zero Record, states.NoVersion and a nil error. When something is stored
	// but cannot be read or parsed, the error wraps states.ErrUnreadable and
	// the version of that content is still returned, so that a save can
	// replace exactly it. Errors name the problem and never contain a secret.
	Load(ctx context.Context) (states.Record, states.Version, error)

	// Save writes rec if the store still holds the expected version
	// (states.AnyVersion: unconditionally) and returns the new version: the
	// version the next Load will report, unless a layered store shows
	// another layer first (then the next Load reports that layer's). When
	// the store holds another version the error wraps states.ErrConflict and
	// nothing is written. A save is atomic: a reader sees the old record or
	// the new one, never a mix.
	Save(ctx context.Context, rec states.Record, expected states.Version) (states.Version, error)

	// Delete removes the credential from every backend that may hold it and
	// reports each one. A failure in one backend does not stop the others
	// from being cleared; the error joins the failures.
	Delete(ctx context.Context) ([]states.Removal, error)

	// Lock takes the store's cross-process lock, waiting until ctx is done.
	// A lock that cannot be taken in time returns an error wrapping
	// states.ErrLockTimeout. The returned function releases the lock.
	Lock(ctx context.Context) (unlock func() error, err error)

	// Info describes the store for people.
	Info() states.StoreInfo
}

// TokenEndpoint redeems a refresh token at an OAuth provider. The oauth
// package provides it.
type TokenEndpoint interface {
	// Redeem exchanges refreshToken for new tokens. A failure is returned as
	// a *states.RefreshError that says whether it is permanent; any other
	// error is treated as transient.
	Redeem(ctx context.Context, refreshToken states.Secret) (states.Grant, error)
}

// HostRefresher asks the embedding host for new host-managed tokens after
// the API refused the current ones.
type HostRefresher interface {
	// RefreshHost returns new tokens, with the id token already parsed into
	// the grant's claims. previousAccountID is the account the refused tokens
	// belonged to ("" when unknown).
	RefreshHost(ctx context.Context, previousAccountID string) (states.Grant, error)
}

// Clock tells the time and runs functions later. The runner and the manager
// read time only through it, so tests can drive time by hand.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not run yet and reports whether it
	// did so.
	Stop() bool
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
