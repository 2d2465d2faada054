package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/credfsm/credfsm/states"
)

// lockPoll is how often a waiter retries the lock file. Waiters poll because
// a blocking flock(2) cannot be abandoned when the caller gives up. Every
// waiter of a refresh storm pays up to one interval after the holder lets
// go, one after another, so the interval is short: a retry is one cheap
// system call, and only waiters make it.
const lockPoll = 2 * time.Millisecond

// lockHome takes the store lock of home: first the in-process mutex for its
// lock file, then an exclusive advisory lock on the file itself
// (<home>/auth.json.lock, created 0600, with home created 0700 if missing).
//
// The lock is not re-entrant. A second Lock while the first is held waits
// like any other caller and fails when ctx is done; nothing in this package
// takes the lock on its own, so Load, Save and Delete are safe to call while
// holding it.
func lockHome(ctx context.Context, home string) (unlock func() error, err error) {
	path := filepath.Join(home, LockFileName)
	release, err := storeLocks.acquire(ctx, ioKey(path))
	if err != nil {
		return nil, lockTimeout(path, err)
	}

	if err := ensureDir(home); err != nil {
		release()
		return nil, err
	}
	// Opening a named pipe would block for good, and a directory or a link
	// cannot be locked as meant; none of them goes away by waiting.
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		release()
		return nil, fmt.Errorf("%w: %s is a %s; remove it, and the next lock creates it "+
			"as a plain file", ErrBadLockFile, path, kindOf(fi.Mode()))
	}
	// A fresh Flock per call: locks taken through separate open files
	// conflict even inside one process, which the in-process mutex already
	// guarantees but flock(2) then confirms.
	fl := flock.New(path, flock.SetPermissions(0o600))
	ok, err := fl.TryLockContext(ctx, lockPoll)
	if !ok {
		_ = fl.Close() // not locked: this only closes the file, if open
		release()
		if err == nil || errors.Is(err, context.Canceled) ||
			errors.Is(err, context.DeadlineExceeded) {
			return nil, lockTimeout(path, ctx.Err())
		}
		return nil, fmt.Errorf("storage: cannot lock %s: %w", path, err)
	}
	tightenLockFile(path)

	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			defer release()
			if uerr := fl.Unlock(); uerr != nil {
				err = fmt.Errorf("storage: cannot unlock %s: %w", path, uerr)
			}
		})
		return err
	}, nil
}

// lockTimeout is the error for a lock not taken before ctx was done.
func lockTimeout(path string, cause error) error {
	return fmt.Errorf("storage: %w at %s (another process or goroutine holds it): %w",
		states.ErrLockTimeout, path, cause)
}

// tightenLockFile makes a lock file that was created looser (by another
// program or an old umask) 0600. The file is empty, so this is tidiness,
// and a failure changes nothing about the lock.
func tightenLockFile(path string) {
	if !checkPermissions {
		return
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		_ = os.Chmod(path, 0o600)
	}
}

// kindOf names the kind of file a mode describes, for a message.
func kindOf(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeDevice != 0:
		return "device"
	}
	return "special file"
}
