package storage

import (
	"context"
	"strings"
	"sync"

	"github.com/credfsm/credfsm/states"
)

// memory is the process-wide map behind every Ephemeral store, keyed like
// the keyring (KeyringAccount of the home) and holding compact JSON records.
var memory struct {
	mu sync.Mutex
	m  map[string][]byte
}

// Ephemeral keeps the record in this process's memory: never on disk,
// gone when the process exits. Every Ephemeral of the same home shares one
// entry. Host-managed tokens live here whatever the configured mode (Store
// routes them), and so does everything when the mode is ModeEphemeral.
type Ephemeral struct {
	home string
}

// NewEphemeral returns the in-memory store of home.
func NewEphemeral(home string) *Ephemeral { return &Ephemeral{home: home} }

// Load returns the record held for home, if any.
func (e *Ephemeral) Load(ctx context.Context) (states.Record, states.Version, error) {
	snap, err := e.snapshot(ctx)
	if err != nil {
		return states.Record{}, states.NoVersion, err
	}
	return snap.parse()
}

// Save replaces the record if the entry still holds the expected version.
func (e *Ephemeral) Save(ctx context.Context, rec states.Record,
	expected states.Version) (states.Version, error) {
	return saveCAS(ctx, e.home, e, rec, expected)
}

// Delete forgets the record.
func (e *Ephemeral) Delete(ctx context.Context) ([]states.Removal, error) {
	return deleteLocked(ctx, e.home, e)
}

// Lock takes an in-process lock for home's entry: no other process can see
// the entry, so none needs to be kept out.
func (e *Ephemeral) Lock(ctx context.Context) (func() error, error) {
	where := e.where()
	release, err := storeLocks.acquire(ctx, where)
	if err != nil {
		return nil, lockTimeout(where, err)
	}
	return func() error { release(); return nil }, nil
}

// Info describes the store.
func (e *Ephemeral) Info() states.StoreInfo {
	return states.StoreInfo{Kind: ModeEphemeral.String(), Location: e.where()}
}

// holds reports whether a record is held for home.
func (e *Ephemeral) holds() bool {
	memory.mu.Lock()
	defer memory.mu.Unlock()
	_, ok := memory.m[KeyringAccount(e.home)]
	return ok
}

func (e *Ephemeral) where() string { return memoryBackend(KeyringAccount(e.home)) }

// memoryBackendPrefix begins how errors and Removals name the in-memory
// entry of a home: "memory " and the entry's key (see KeyringAccount).
const memoryBackendPrefix = "memory "

func memoryBackend(account string) string { return memoryBackendPrefix + account }

// InMemory reports whether r is about the in-memory entry of a home: the
// host-managed tokens that Store keeps in front of every backend, or the
// whole store in ModeEphemeral. Its Backend names the entry by its key,
// which means nothing to most people; a caller reporting to them can use
// this to describe it in its own words.
func InMemory(r states.Removal) bool {
	return strings.HasPrefix(r.Backend, memoryBackendPrefix)
}

func (e *Ephemeral) snapshot(ctx context.Context) (snapshot, error) {
	if err := ctx.Err(); err != nil {
		return snapshot{}, err
	}
	account := KeyringAccount(e.home)
	memory.mu.Lock()
	data, ok := memory.m[account]
	memory.mu.Unlock()
	// Stored slices are never modified in place, so sharing is safe.
	return snapshot{where: memoryBackend(account), data: data, found: ok}, nil
}

func (e *Ephemeral) write(_ context.Context, rec states.Record, _ snapshot,
	keep document) (states.Version, error) {
	data, err := encodeDocument(rec, keep, false)
	if err != nil {
		return states.NoVersion, err
	}
	memory.mu.Lock()
	if memory.m == nil {
		memory.m = map[string][]byte{}
	}
	memory.m[KeyringAccount(e.home)] = data
	memory.mu.Unlock()
	return versionOf(data, true), nil
}

func (e *Ephemeral) clear(context.Context) ([]states.Removal, error) {
	account := KeyringAccount(e.home)
	memory.mu.Lock()
	_, ok := memory.m[account]
	delete(memory.m, account)
	memory.mu.Unlock()
	return []states.Removal{{Backend: memoryBackend(account), Removed: ok}}, nil
}
