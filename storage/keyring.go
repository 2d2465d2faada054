package storage

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/zalando/go-keyring"

	"github.com/credfsm/credfsm/states"
)

// KeyringProvider is the part of an OS keyring the stores use: one secret
// per (service, account). Get and Delete report a missing entry with
// keyring.ErrNotFound from github.com/zalando/go-keyring. Tests plug in
// doubles; SystemKeyring is the real thing.
type KeyringProvider interface {
	Get(service, account string) (string, error)
	Set(service, account, value string) error
	Delete(service, account string) error
}

// SystemKeyring is the OS keyring through github.com/zalando/go-keyring:
// the macOS Keychain, the Secret Service on Linux and BSD, the Windows
// Credential Manager. Its keyring.MockInit switches it to memory for tests.
type SystemKeyring struct{}

// Get reads a secret.
func (SystemKeyring) Get(service, account string) (string, error) {
	return keyring.Get(service, account)
}

// Set writes a secret.
func (SystemKeyring) Set(service, account, value string) error {
	return keyring.Set(service, account, value)
}

// Delete removes a secret.
func (SystemKeyring) Delete(service, account string) error {
	return keyring.Delete(service, account)
}

// Keyring keeps the record in the OS keyring: service "Codex Auth", account
// KeyringAccount(home), value the compact JSON record. There is no fallback:
// a keyring that fails or does not answer in time is an error (see Auto for
// the store that falls back).
//
// A successful save removes a plaintext auth.json left in the home
// directory, so the credential is not kept in two places. Failing to remove
// it does not fail the save (the keyring holds the record), but it is
// logged and reported in Info until a later save or delete succeeds.
//
// TODO: the Windows Credential Manager caps a secret at 2560 bytes, and a
// record holding three JWTs often exceeds it, so saves fail there (Auto then
// falls back to the file). Splitting the record over several entries would
// fix it, but Codex would not find the pieces.
type Keyring struct {
	home   string
	file   *File // the plaintext copy a save removes
	client keyringClient
	logger *slog.Logger

	mu   sync.Mutex
	note string // a plaintext copy could not be removed
}

// NewKeyring returns the keyring store of home. A nil provider is
// SystemKeyring; a timeout ≤ 0 is DefaultKeyringTimeout; a nil logger
// discards.
func NewKeyring(home string, provider KeyringProvider, timeout time.Duration,
	logger *slog.Logger) *Keyring {
	logger = orDiscard(logger)
	return newKeyring(home, NewFile(home, logger), provider, timeout, logger)
}

func newKeyring(home string, file *File, provider KeyringProvider, timeout time.Duration,
	logger *slog.Logger) *Keyring {
	if provider == nil {
		provider = SystemKeyring{}
	}
	if timeout <= 0 {
		timeout = DefaultKeyringTimeout
	}
	return &Keyring{
		home:   home,
		file:   file,
		client: keyringClient{provider: provider, timeout: timeout},
		logger: logger,
	}
}

// Entry returns the keyring entry the record lives in, as
// "Codex Auth/cli|<16 hex digits>".
func (k *Keyring) Entry() string { return keyringEntry(KeyringAccount(k.home)) }

// Load reads and parses the keyring entry. A missing entry is the empty
// store. An entry that does not parse returns a *LoadError with its
// version.
func (k *Keyring) Load(ctx context.Context) (states.Record, states.Version, error) {
	snap, err := k.snapshot(ctx)
	if err != nil {
		return states.Record{}, states.NoVersion, err
	}
	return snap.parse()
}

// Save writes rec if the entry still holds the expected version, then
// removes a leftover plaintext auth.json.
func (k *Keyring) Save(ctx context.Context, rec states.Record,
	expected states.Version) (states.Version, error) {
	return saveCAS(ctx, k.home, k, rec, expected)
}

// Delete removes the keyring entry and the plaintext file. Both are always
// attempted: a keyring that fails does not keep the file from being
// removed.
func (k *Keyring) Delete(ctx context.Context) ([]states.Removal, error) {
	return deleteLocked(ctx, k.home, k)
}

// Lock takes the cross-process lock of the home directory (a lock file in
// it, created if needed): the keyring itself offers no lock.
func (k *Keyring) Lock(ctx context.Context) (func() error, error) {
	return lockHome(ctx, k.home)
}

// Info describes the store.
func (k *Keyring) Info() states.StoreInfo {
	k.mu.Lock()
	defer k.mu.Unlock()
	return states.StoreInfo{Kind: ModeKeyring.String(), Location: k.Entry(), Note: k.note}
}

func (k *Keyring) snapshot(ctx context.Context) (snapshot, error) {
	account := KeyringAccount(k.home)
	value, found, err := k.client.get(ctx, account)
	if err != nil {
		return snapshot{}, err
	}
	where := "keyring " + keyringEntry(account)
	return snapshot{where: where, data: []byte(value), found: found}, nil
}

func (k *Keyring) write(ctx context.Context, rec states.Record, _ snapshot,
	keep document) (states.Version, error) {
	data, err := encodeDocument(rec, keep, false)
	if err != nil {
		return states.NoVersion, err
	}
	if err := k.client.set(ctx, KeyringAccount(k.home), string(data)); err != nil {
		return states.NoVersion, err
	}
	k.removePlaintext()
	return versionOf(data, true), nil
}

// removePlaintext deletes auth.json after the keyring took the record.
func (k *Keyring) removePlaintext() {
	removed, _, err := k.file.remove()
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		k.note = "a plaintext copy of the credential remains at " + k.file.Path() +
			" and could not be removed (" + err.Error() + "); remove it by hand"
		k.logger.Warn("storage: saved to the keyring, but the plaintext credential file "+
			"could not be removed", "path", k.file.Path(), "err", err)
		return
	}
	k.note = ""
	if removed {
		k.logger.Info("storage: removed the plaintext credential file "+
			"now that the keyring holds the record",
			"path", k.file.Path())
	}
}

func (k *Keyring) clear(ctx context.Context) ([]states.Removal, error) {
	account := KeyringAccount(k.home)
	found, kerr := k.client.del(ctx, account)
	removals := []states.Removal{
		{Backend: "keyring " + keyringEntry(account), Removed: found, Err: kerr},
	}

	fileRemovals, ferr := k.file.clear(ctx)
	removals = append(removals, fileRemovals...)
	if ferr == nil {
		k.mu.Lock()
		k.note = ""
		k.mu.Unlock()
	}
	return removals, errors.Join(kerr, ferr)
}
