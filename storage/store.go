package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/credfsm/credfsm/states"
)

// Options configure Open.
type Options struct {
	// Home is the Codex home directory; "" means DefaultHome().
	Home string
	// Mode is where the record is kept; the zero value is ModeFile.
	Mode Mode
	// Logger receives warnings (a fallback to the file, a credential file
	// others can read); nil discards them. Nothing logged holds a secret.
	Logger *slog.Logger
	// KeyringTimeout bounds each keyring call; ≤ 0 means
	// DefaultKeyringTimeout.
	KeyringTimeout time.Duration
	// Keyring is the OS keyring; nil means SystemKeyring.
	Keyring KeyringProvider
}

// Store is the store the engine uses: the configured backend behind the
// in-memory entry for host-managed tokens, in Codex's order of precedence.
//
//   - Load returns the in-memory entry of this home when there is one
//     (host-managed tokens beat anything persisted), else what the
//     configured backend holds. In ModeEphemeral there is nothing else.
//   - Save sends host-managed records (states.ModeExternal) to memory and
//     every other record to the configured backend, so host tokens never
//     reach disk or keyring; saving such a record also drops host-managed
//     tokens from memory, since it replaces them. The compare-and-swap is
//     against what Load would show; the version returned is the written
//     backend's.
//   - Delete clears memory and the configured backend (for the keyring and
//     auto modes, the keyring entry and the plaintext file), reporting each
//     and carrying on past failures.
//   - Lock is the lock file in the home directory, or an in-process lock
//     in ModeEphemeral.
//
// A Store is safe for concurrent use.
type Store struct {
	home    string
	mode    Mode
	memory  *Ephemeral
	backend configured // == memory in ModeEphemeral
}

// configured is what Store needs from the configured backend.
type configured interface {
	backend
	Load(ctx context.Context) (states.Record, states.Version, error)
	Lock(ctx context.Context) (func() error, error)
	Info() states.StoreInfo
}

// Open returns the Store of opts.Home for opts.Mode. It touches nothing: the
// home directory is created by the first save or lock.
func Open(opts Options) (*Store, error) {
	home := opts.Home
	if home == "" {
		var err error
		if home, err = DefaultHome(); err != nil {
			return nil, err
		}
	}
	s := &Store{home: home, mode: opts.Mode, memory: NewEphemeral(home)}
	switch opts.Mode {
	case ModeFile:
		s.backend = NewFile(home, opts.Logger)
	case ModeKeyring:
		s.backend = NewKeyring(home, opts.Keyring, opts.KeyringTimeout, opts.Logger)
	case ModeAuto:
		s.backend = NewAuto(home, opts.Keyring, opts.KeyringTimeout, opts.Logger)
	case ModeEphemeral:
		s.backend = s.memory
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownMode, uint8(opts.Mode))
	}
	return s, nil
}

// Home returns the home directory the store serves.
func (s *Store) Home() string { return s.home }

// Mode returns the configured mode.
func (s *Store) Mode() Mode { return s.mode }

// Load returns the in-memory record of this home if there is one, else the
// configured backend's. See Store.
func (s *Store) Load(ctx context.Context) (states.Record, states.Version, error) {
	snap, err := s.memory.snapshot(ctx)
	if err != nil {
		return states.Record{}, states.NoVersion, err
	}
	if snap.found || s.mode == ModeEphemeral {
		return snap.parse()
	}
	return s.backend.Load(ctx)
}

// Save writes rec where it belongs if what Load would show still has the
// expected version. See Store.
func (s *Store) Save(ctx context.Context, rec states.Record,
	expected states.Version) (states.Version, error) {
	if rec.IsZero() {
		return states.NoVersion, ErrEmptyRecord
	}
	release, err := ioLocks.acquire(ctx, ioKey(s.home))
	if err != nil {
		return states.NoVersion, fmt.Errorf("storage: save abandoned: %w", err)
	}
	defer release()

	mem, err := s.memory.snapshot(ctx)
	if err != nil {
		return states.NoVersion, err
	}
	toMemory := rec.Mode == states.ModeExternal || s.mode == ModeEphemeral
	view, prev := mem, mem // what Load shows; what the target holds
	if s.mode != ModeEphemeral && (!mem.found || !toMemory) {
		held, err := s.backend.snapshot(ctx)
		switch {
		case err == nil:
		case toMemory && expected == states.AnyVersion:
			// Nothing to compare with, and host-managed tokens do not
			// depend on the backend: an unreachable keyring must not
			// keep them out of memory.
			held = snapshot{}
		default:
			return states.NoVersion, err
		}
		if !mem.found {
			view = held
		}
		if !toMemory {
			prev = held
		}
	}
	if err := checkVersion(view, expected); err != nil {
		return states.NoVersion, err
	}

	// Unknown members come from the record being replaced, or, when the
	// target is empty, from the one Load showed.
	keep := prev
	if !keep.found {
		keep = view
	}
	if toMemory {
		return s.memory.write(ctx, rec, prev, unknownMembers(keep.data, keep.found))
	}
	v, err := s.backend.write(ctx, rec, prev, unknownMembers(keep.data, keep.found))
	if err == nil && mem.found {
		// The record saved replaces the credential, and host-managed tokens
		// left in memory would hide it from every later Load.
		_, err = s.memory.clear(ctx)
	}
	return v, err
}

// Delete removes the credential from memory and from the configured
// backend. See Store.
func (s *Store) Delete(ctx context.Context) ([]states.Removal, error) {
	release, err := ioLocks.acquire(ctx, ioKey(s.home))
	if err != nil {
		return nil, fmt.Errorf("storage: delete abandoned: %w", err)
	}
	defer release()

	removals, merr := s.memory.clear(ctx)
	if s.mode == ModeEphemeral {
		return removals, merr
	}
	more, berr := s.backend.clear(ctx)
	return append(removals, more...), errors.Join(merr, berr)
}

// Lock takes the store's lock; see Store.
func (s *Store) Lock(ctx context.Context) (func() error, error) {
	return s.backend.Lock(ctx)
}

// Info describes the configured backend, and says so when host-managed
// tokens held in memory take precedence over it.
func (s *Store) Info() states.StoreInfo {
	info := s.backend.Info()
	if s.mode != ModeEphemeral && s.memory.holds() {
		info.Note = joinNotes(info.Note, "host-managed tokens held in memory ("+
			s.memory.where()+") take precedence over this store")
	}
	return info
}
