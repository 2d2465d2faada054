package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/credfsm/credfsm/states"
)

// Sentinels a caller can branch on with errors.Is. The states package holds
// the three that every store shares (states.ErrUnreadable,
// states.ErrConflict, states.ErrLockTimeout); these are specific to storage.
var (
	// ErrKeyringUnavailable is wrapped by every failed call to the OS keyring,
	// including time-outs. The auto store falls back to the file on it.
	ErrKeyringUnavailable = errors.New("storage: OS keyring unavailable")

	// ErrKeyringTimeout is wrapped when a keyring call gave no answer in time
	// (or an earlier call that gave none is still pending). A locked Secret
	// Service is the usual cause.
	ErrKeyringTimeout = errors.New("storage: OS keyring did not answer in time")

	// ErrEmptyRecord is returned by Save for the zero record. Signing out is
	// a Delete, not a save of nothing.
	ErrEmptyRecord = errors.New(
		"storage: refusing to save an empty record (use Delete to sign out)")

	// ErrInvalidRecord is returned by Save for a record that could not be
	// loaded back once written (an id token that is not a JWT, an API-key
	// record without a key, ...). Nothing is written.
	ErrInvalidRecord = errors.New("storage: record cannot be stored")

	// ErrUnknownMode is returned by ParseMode and Open for a store mode they
	// do not know.
	ErrUnknownMode = errors.New("storage: unknown credential store mode")

	// ErrBadLockFile is returned by Lock when the lock file's path holds
	// something other than a regular file (a directory, a symbolic link, a
	// named pipe). It does not go away by itself: someone must remove it.
	ErrBadLockFile = errors.New("storage: the lock file is not a regular file")
)

// LoadError reports a stored credential that cannot be read or parsed. It
// wraps states.ErrUnreadable, so the layers above treat every backend alike.
//
// Invariant: neither Problem nor Error() quotes stored content. Problems are
// described by field name, JSON type and byte offset only, because the
// content is full of secrets.
type LoadError struct {
	Path    string // the file, keyring entry or memory entry that was read
	Problem string // what is wrong, for people
	Err     error  // the underlying cause, if any; also secret-free
}

func (e *LoadError) Error() string {
	return "storage: cannot load the credential in " + e.Path + ": " + e.Problem
}

// Unwrap exposes states.ErrUnreadable and the cause.
func (e *LoadError) Unwrap() []error {
	if e.Err == nil {
		return []error{states.ErrUnreadable}
	}
	return []error{states.ErrUnreadable, e.Err}
}

// ConflictError is returned by a compare-and-swap save that found another
// version than the one expected. Nothing was written. It wraps
// states.ErrConflict.
type ConflictError struct {
	Path     string         // where the store looked
	Expected states.Version // what the caller read
	Found    states.Version // what is there now
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("storage: %s changed since it was read (expected %s, found %s); "+
		"reload it and decide again", e.Path, describeVersion(e.Expected), describeVersion(e.Found))
}

// Unwrap exposes states.ErrConflict.
func (e *ConflictError) Unwrap() error { return states.ErrConflict }

// describeVersion shortens a version for a message. Versions are content
// hashes; twelve hex digits tell them apart for a person.
func describeVersion(v states.Version) string {
	switch {
	case v == states.NoVersion:
		return "nothing stored"
	case len(v) > 12:
		return "version " + string(v[:12])
	}
	return "version " + string(v)
}

// KeyringError reports a failed call to the OS keyring. It wraps
// ErrKeyringUnavailable, ErrKeyringTimeout when the call was abandoned, and
// the platform's error.
type KeyringError struct {
	Op    string // "read", "write" or "delete"
	Entry string // the keyring entry, e.g. "Codex Auth/cli|940db7b1d0e4eb40"

	// Waited is how long the call ran before it was abandoned; zero when the
	// keyring answered (with an error) or when an earlier abandoned call was
	// still pending, so this one was not even started.
	Waited time.Duration
	// Pending is true when the call was not started because an earlier call
	// to the same entry is still waiting for the keyring.
	Pending bool

	Err error // the keyring's error, or the context's when abandoned
}

func (e *KeyringError) Error() string {
	switch {
	case e.Pending:
		return "storage: keyring " + e.Op + " of " + e.Entry +
			" not attempted: an earlier call still has no answer (is the keyring locked?)"
	case e.Waited > 0 && errors.Is(e.Err, context.Canceled):
		return fmt.Sprintf("storage: keyring %s of %s abandoned after %s: the caller gave up",
			e.Op, e.Entry, e.Waited.Round(time.Millisecond))
	case e.Waited > 0:
		return fmt.Sprintf("storage: keyring %s of %s gave no answer within %s "+
			"(is the keyring locked?)", e.Op, e.Entry, e.Waited.Round(time.Millisecond))
	}
	return "storage: keyring " + e.Op + " of " + e.Entry + " failed: " + errorText(e.Err)
}

// Unwrap exposes ErrKeyringUnavailable, ErrKeyringTimeout for abandoned or
// skipped calls, and the cause.
func (e *KeyringError) Unwrap() []error {
	errs := []error{ErrKeyringUnavailable}
	if e.Pending || e.Waited > 0 {
		errs = append(errs, ErrKeyringTimeout)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// errorText is err's message, or "unknown error" for nil.
func errorText(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}
