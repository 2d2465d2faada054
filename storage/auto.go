package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/credfsm/credfsm/states"
)

// Auto keeps the record in the OS keyring when it can and in the plaintext
// file when it cannot — and never silently: whenever the credential in use
// is the file's, Info reports InsecureFallback with the reason, and each
// time the store goes over to the file it logs a warning.
//
// Load reads the keyring; when the keyring holds nothing it reads the file
// (a record from before the keyring was used); when the keyring fails or
// gives no answer in time it reads the file. A keyring entry that does not
// parse is an error, not a reason to fall back: an older plaintext file
// must not stand in for a newer record that happens to be unreadable.
//
// Save writes to the keyring (removing the file on success) and, when the
// keyring fails or refuses the record, to the file.
type Auto struct {
	home   string
	kr     *Keyring
	file   *File
	logger *slog.Logger

	mu           sync.Mutex
	plaintext    bool   // the credential in use is the file's
	reason       string // why, for Info
	shadowWarned bool   // the ignored-file warning was logged
	shadowed     bool   // the keyring held a record and auth.json exists too
}

// NewAuto returns the auto store of home. A nil provider is SystemKeyring;
// a timeout ≤ 0 is DefaultKeyringTimeout; a nil logger discards.
func NewAuto(home string, provider KeyringProvider, timeout time.Duration,
	logger *slog.Logger) *Auto {
	logger = orDiscard(logger)
	file := NewFile(home, logger)
	return &Auto{
		home:   home,
		kr:     newKeyring(home, file, provider, timeout, logger),
		file:   file,
		logger: logger,
	}
}

// Load reads the keyring, else the file; see Auto.
func (a *Auto) Load(ctx context.Context) (states.Record, states.Version, error) {
	snap, err := a.snapshot(ctx)
	if err != nil {
		return states.Record{}, states.NoVersion, err
	}
	return snap.parse()
}

// Save writes rec if what Load would show still has the expected version:
// to the keyring, else to the file.
func (a *Auto) Save(ctx context.Context, rec states.Record,
	expected states.Version) (states.Version, error) {
	return saveCAS(ctx, a.home, a, rec, expected)
}

// Delete removes the keyring entry and the plaintext file, each whatever
// happens to the other.
func (a *Auto) Delete(ctx context.Context) ([]states.Removal, error) {
	return deleteLocked(ctx, a.home, a)
}

// Lock takes the cross-process lock of the home directory.
func (a *Auto) Lock(ctx context.Context) (func() error, error) {
	return lockHome(ctx, a.home)
}

// Info describes the store, including a fallback to the file.
func (a *Auto) Info() states.StoreInfo {
	info := a.kr.Info()
	info.Kind = ModeAuto.String()
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.plaintext:
		info.InsecureFallback = true
		info.Location = a.file.Path()
		info.Note = joinNotes(a.reason+"; the credential is kept in a plaintext file "+
			"only this user can read", a.file.Info().Note)
	case a.shadowed:
		info.Note = joinNotes(info.Note, "a plaintext "+a.file.Path()+
			" exists too and is ignored while the keyring holds a record")
	}
	return info
}

func (a *Auto) snapshot(ctx context.Context) (snapshot, error) {
	ks, err := a.kr.snapshot(ctx)
	if err != nil {
		if ctx.Err() != nil || !errors.Is(err, ErrKeyringUnavailable) {
			return snapshot{}, err // the caller gave up: not the keyring's fault
		}
		a.usePlaintext("the OS keyring is unavailable ("+err.Error()+")", true)
		fs, err := a.file.snapshot(ctx)
		fs.keyring = keyringDown
		return fs, err
	}
	if ks.found {
		a.useKeyring()
		ks.keyring = keyringHeld
		a.noteShadow()
		return ks, nil
	}
	fs, err := a.file.snapshot(ctx)
	fs.keyring = keyringEmpty
	switch {
	case err != nil:
	case fs.found:
		a.usePlaintext("the keyring holds no record, so the plaintext file's is used "+
			"until the next save moves it to the keyring", false)
	default:
		a.useKeyring() // nothing stored anywhere
	}
	return fs, err
}

func (a *Auto) write(ctx context.Context, rec states.Record, prev snapshot,
	keep document) (states.Version, error) {
	// When the read just failed on the keyring, the record Load shows is
	// the file's, and that is where the new one goes.
	if prev.keyring != keyringDown {
		v, err := a.kr.write(ctx, rec, prev, keep)
		if err == nil {
			a.useKeyring()
			return v, nil
		}
		if ctx.Err() != nil || !errors.Is(err, ErrKeyringUnavailable) {
			return states.NoVersion, err
		}
		a.usePlaintext("the OS keyring did not take the record ("+err.Error()+")", true)
		if prev.keyring == keyringHeld {
			// The keyring answers but refused this record (too big, say).
			// Its old record would shadow the file on the next load and
			// bring back tokens that may no longer be valid; out it goes,
			// or the save fails.
			if _, derr := a.kr.client.del(ctx, KeyringAccount(a.home)); derr != nil {
				return states.NoVersion, fmt.Errorf("storage: the keyring refused the record and "+
					"its previous record could not be removed, so nothing was saved: %w",
					errors.Join(err, derr))
			}
		}
	}
	// TODO: when the keyring was unreachable it may still hold an older
	// record, which wins again once the keyring is back (Codex's order:
	// keyring first). Load reports that case in Info but cannot yet tell
	// which of the two records is newer.
	return a.file.write(ctx, rec, prev, keep)
}

func (a *Auto) clear(ctx context.Context) ([]states.Removal, error) {
	removals, err := a.kr.clear(ctx)
	a.mu.Lock()
	a.shadowed = false
	a.mu.Unlock()
	return removals, err
}

// usePlaintext records that the credential in use is the file's, and
// warns when the store was not already there. A reason that explains a
// failure replaces any other; the milder one (the keyring is merely empty)
// does not replace a failure's.
func (a *Auto) usePlaintext(reason string, failure bool) {
	a.mu.Lock()
	first := !a.plaintext
	if first || failure {
		a.reason = reason
	}
	a.plaintext, a.shadowed = true, false
	a.mu.Unlock()
	if first {
		a.logger.Warn("storage: auto store is using the plaintext credential file",
			"path", a.file.Path(), "why", reason)
	}
}

// useKeyring records that the credential in use (if any) is the keyring's.
func (a *Auto) useKeyring() {
	a.mu.Lock()
	was := a.plaintext
	a.plaintext, a.reason, a.shadowed = false, "", false
	a.mu.Unlock()
	if was {
		a.logger.Info("storage: auto store is back on the OS keyring", "entry", a.kr.Entry())
	}
}

// noteShadow checks for a plaintext file next to a keyring record: one of
// the two is stale, and the file is the one ignored.
func (a *Auto) noteShadow() {
	if _, err := os.Lstat(a.file.Path()); err != nil {
		return
	}
	a.mu.Lock()
	a.shadowed = true
	first := !a.shadowWarned
	a.shadowWarned = true
	a.mu.Unlock()
	if first {
		a.logger.Warn("storage: a plaintext credential file is ignored "+
			"because the keyring holds a record",
			"path", a.file.Path(), "entry", a.kr.Entry())
	}
}

// joinNotes joins non-empty notes with "; ".
func joinNotes(notes ...string) string {
	out := ""
	for _, n := range notes {
		switch {
		case n == "":
		case out == "":
			out = n
		default:
			out += "; " + n
		}
	}
	return out
}
