package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/credfsm/credfsm/states"
)

// backend is what every store of this package is built from, and what the
// composite Store needs from the one it is configured with: a raw read, an
// unconditional write and a clear. The public Load, Save and Delete add the
// parsing, the compare-and-swap and the in-process serialisation on top,
// once, for all of them.
type backend interface {
	// snapshot reads what Load would parse, without parsing it.
	snapshot(ctx context.Context) (snapshot, error)
	// write replaces the record with rec, carrying keep's unknown members.
	// The caller holds the home's ioLocks entry and has compared prev (the
	// backend's own snapshot) with the version it expected.
	write(ctx context.Context, rec states.Record, prev snapshot,
		keep document) (states.Version, error)
	// clear removes the record from every place the backend keeps one and
	// reports each of them, carrying on past failures.
	clear(ctx context.Context) ([]states.Removal, error)
}

// snapshot is the raw content of a store at one moment.
type snapshot struct {
	where string // file path or keyring/memory entry, for errors
	data  []byte
	found bool // something is stored (data may still be empty)

	// digest, when set, is the version of what is stored, computed over
	// more than data holds (a file too big to read whole).
	digest states.Version
	// size, when digest is set, is how many bytes are stored; data holds
	// only the first of them.
	size int64

	// target is, for the file store, the file read: auth.json, or the file
	// a symbolic link there leads to. A save replaces exactly that file, so
	// its compare and its write are about the same content even when the
	// link changes in between. Empty when the link could not be followed.
	target string

	// keyring is what the auto store found in the keyring on the way to
	// this snapshot; other stores leave it keyringUnused.
	keyring keyringState
}

// keyringState is what the auto store's keyring answered.
type keyringState uint8

const (
	keyringUnused keyringState = iota // not consulted
	keyringEmpty                      // answered: no entry
	keyringHeld                       // answered with a record (this snapshot)
	keyringDown                       // failed or gave no answer in time
)

func (s snapshot) version() states.Version {
	if s.digest != "" {
		return s.digest
	}
	return versionOf(s.data, s.found)
}

// parse turns the snapshot into what Load returns. An unreadable record
// comes with its version, so a caller can replace exactly that content.
func (s snapshot) parse() (states.Record, states.Version, error) {
	if !s.found {
		return states.Record{}, states.NoVersion, nil
	}
	if s.digest != "" && s.size > maxRecordSize {
		// data is cut short: its length is not the size of anything.
		return states.Record{}, s.version(), loadError(s.where, tooBigError(s.size))
	}
	doc, err := parseDocument(s.data)
	if err != nil {
		return states.Record{}, s.version(), loadError(s.where, err)
	}
	return doc.rec, s.version(), nil
}

// loadError wraps a parse problem for the record kept at where.
func loadError(where string, err error) *LoadError {
	return &LoadError{Path: where, Problem: err.Error(), Err: errors.Unwrap(err)}
}

// saveCAS is Save for a single backend: under the home's in-process
// mutex, read, compare with expected, write.
func saveCAS(ctx context.Context, home string, b backend, rec states.Record,
	expected states.Version) (states.Version, error) {
	if rec.IsZero() {
		return states.NoVersion, ErrEmptyRecord
	}
	release, err := ioLocks.acquire(ctx, ioKey(home))
	if err != nil {
		return states.NoVersion, fmt.Errorf("storage: save abandoned: %w", err)
	}
	defer release()

	snap, err := b.snapshot(ctx)
	if err != nil {
		return states.NoVersion, err
	}
	if err := checkVersion(snap, expected); err != nil {
		return states.NoVersion, err
	}
	return b.write(ctx, rec, snap, unknownMembers(snap.data, snap.found))
}

// deleteLocked is Delete for a single backend, under the home's mutex.
func deleteLocked(ctx context.Context, home string, b backend) ([]states.Removal, error) {
	release, err := ioLocks.acquire(ctx, ioKey(home))
	if err != nil {
		return nil, fmt.Errorf("storage: delete abandoned: %w", err)
	}
	defer release()
	return b.clear(ctx)
}
