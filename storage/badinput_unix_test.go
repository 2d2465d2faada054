//go:build !windows

package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A named pipe at auth.json would block an open for reading until someone
// writes to it. Load refuses it at once, and Delete (what logout runs)
// removes it.
func TestLoad_namedPipeIsRefusedWithoutBlocking(t *testing.T) {
	home := t.TempDir()
	path := filepath.Join(home, AuthFileName)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("cannot make a named pipe here: %v", err)
	}
	f := NewFile(home, nil)

	done := make(chan error, 1)
	go func() {
		_, _, err := f.Load(ctxT(t))
		done <- err
	}()
	select {
	case err := <-done:
		var le *LoadError
		if !errors.As(err, &le) || !strings.Contains(le.Problem, "not a regular file") {
			t.Errorf("err = %v, want a *LoadError saying it is not a regular file", err)
		}
	case <-time.After(5 * time.Second):
		// Unblock the reader so that the test can end.
		if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Fatal("Load blocked on a named pipe")
	}

	if _, err := f.Delete(ctxT(t)); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the named pipe is still there after Delete (lstat: %v)", err)
	}
}

// A lock file path that holds anything but a regular file is refused at
// once with ErrBadLockFile: a named pipe would block the open for good, and
// none of them goes away by waiting.
func TestLock_refusesALockFileThatIsNotARegularFile(t *testing.T) {
	for name, create := range map[string]func(path string) error{
		"named pipe":    func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"directory":     func(p string) error { return os.Mkdir(p, 0o700) },
		"dangling link": func(p string) error { return os.Symlink("nowhere/x", p) },
		"link loop":     func(p string) error { return os.Symlink(filepath.Base(p), p) },
	} {
		t.Run(name, func(t *testing.T) {
			home := t.TempDir()
			path := filepath.Join(home, LockFileName)
			if err := create(path); err != nil {
				t.Skipf("cannot make a %s here: %v", name, err)
			}
			done := make(chan error, 1)
			go func() {
				unlock, err := NewFile(home, nil).Lock(ctxT(t))
				if err == nil {
					_ = unlock()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrBadLockFile) || !strings.Contains(err.Error(), path) {
					t.Errorf("err = %v, want ErrBadLockFile naming %s", err, path)
				}
			case <-time.After(5 * time.Second):
				if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
					w.Close()
				}
				t.Fatal("Lock blocked")
			}
		})
	}
}
