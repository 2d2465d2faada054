//go:build !windows

package storage

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credfsm/credfsm/states"
)

// A home whose mode cannot be changed (another user's directory: chmod
// fails with EPERM) fails the save with an error that wraps
// fs.ErrPermission, so that the layers above can tell it will not pass by
// itself. Root may chmod anything, so the refusal is simulated.
func TestFile_saveIntoAHomeThatCannotBeMadePrivate(t *testing.T) {
	home := t.TempDir()
	if err := os.Chmod(home, 0o755); err != nil {
		t.Fatal(err)
	}
	refuseChmod(t, home)

	stores := map[string]func() (states.Version, error){
		"File.Save": func() (states.Version, error) {
			return NewFile(home, nil).Save(ctxT(t), managedRecord(t, "rt"), states.AnyVersion)
		},
		"Store.Save": func() (states.Version, error) {
			s, err := Open(Options{Home: home, Mode: ModeFile})
			if err != nil {
				t.Fatal(err)
			}
			return s.Save(ctxT(t), managedRecord(t, "rt"), states.AnyVersion)
		},
		"File.Lock": func() (states.Version, error) {
			unlock, err := NewFile(home, nil).Lock(ctxT(t))
			if err == nil {
				unlock()
			}
			return states.NoVersion, err
		},
	}
	for name, call := range stores {
		t.Run(name, func(t *testing.T) {
			_, err := call()
			if !errors.Is(err, fs.ErrPermission) {
				t.Fatalf("err = %v, want it to wrap fs.ErrPermission", err)
			}
			for _, not := range []error{states.ErrConflict, states.ErrUnreadable,
				states.ErrLockTimeout} {
				if errors.Is(err, not) {
					t.Errorf("err = %v also wraps %v", err, not)
				}
			}
			if !strings.Contains(err.Error(), home) {
				t.Errorf("err = %v does not name %s", err, home)
			}
		})
	}
	if fileExists(filepath.Join(home, AuthFileName)) {
		t.Errorf("a save that could not make the home private wrote the credential")
	}
}

// refuseChmod makes chmod of dir fail as it does on another user's
// directory, for the rest of the test.
func refuseChmod(t *testing.T, dir string) {
	t.Helper()
	orig := chmod
	chmod = func(name string, mode os.FileMode) error {
		if name == dir {
			return &fs.PathError{Op: "chmod", Path: name, Err: syscall.EPERM}
		}
		return orig(name, mode)
	}
	t.Cleanup(func() { chmod = orig })
}

// A home the owner made read-only keeps its mode: a save takes group and
// other permissions away, but does not give the owner write permission
// back. Without it the save fails with a permission error (except for
// root, whom permissions do not stop).
func TestFile_saveDoesNotMakeAReadOnlyHomeWritable(t *testing.T) {
	home := t.TempDir()
	if err := os.Chmod(home, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(home, 0o700) }) // so TempDir can remove it

	_, err := NewFile(home, nil).Save(ctxT(t), managedRecord(t, "rt"), states.AnyVersion)
	assertPerm(t, home, 0o500)
	switch {
	case os.Geteuid() == 0:
		t.Logf("running as root, which may write anywhere: save err = %v", err)
	case !errors.Is(err, fs.ErrPermission):
		t.Errorf("err = %v, want it to wrap fs.ErrPermission", err)
	}
}

// A home the save creates is 0700 whatever the umask.
func TestFile_createdHomeIsPrivateWhateverTheUmask(t *testing.T) {
	home := filepath.Join(t.TempDir(), "codex")
	old := syscall.Umask(0o277) // would leave the new directory 0500
	_, err := NewFile(home, nil).Save(ctxT(t), managedRecord(t, "rt"), states.NoVersion)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	assertPerm(t, home, 0o700)
}

// Lock fails, before anything could be redeemed, when a save could not
// create its temporary file next to auth.json; the lock is released and
// nothing is left behind. Played by refusing the probe's creation, since
// root may write in a read-only directory; a non-root run also checks a
// real read-only home.
func TestFile_lockRefusesAHomeASaveCannotWrite(t *testing.T) {
	check := func(t *testing.T, home string) {
		t.Helper()
		f := NewFile(home, nil)
		unlock, err := f.Lock(ctxT(t))
		if err == nil {
			_ = unlock()
			t.Fatal("Lock succeeded in a home a save cannot write")
		}
		if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), home) {
			t.Errorf("err = %v, want it to wrap fs.ErrPermission and name %s", err, home)
		}
		entries, _ := os.ReadDir(home)
		for _, e := range entries {
			if e.Name() != AuthFileName && e.Name() != LockFileName {
				t.Errorf("left behind: %s", e.Name())
			}
		}
	}
	seed := func(t *testing.T) string {
		home := t.TempDir()
		if _, err := NewFile(home, nil).Save(ctxT(t), managedRecord(t, "rt"), states.NoVersion); err != nil {
			t.Fatal(err)
		}
		unlock, err := NewFile(home, nil).Lock(ctxT(t)) // leaves the lock file, as any refresh does
		if err != nil {
			t.Fatal(err)
		}
		_ = unlock()
		return home
	}

	t.Run("refused", func(t *testing.T) {
		home := seed(t)
		orig := createTemp
		createTemp = func(dir, pattern string) (*os.File, error) {
			return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir, pattern), Err: syscall.EACCES}
		}
		t.Cleanup(func() { createTemp = orig })
		check(t, home)
		createTemp = orig
		// The lock was released: it can be taken again at once.
		ctx, cancel := context.WithTimeout(ctxT(t), time.Second)
		defer cancel()
		unlock, err := NewFile(home, nil).Lock(ctx)
		if err != nil {
			t.Fatalf("the lock was not released: %v", err)
		}
		_ = unlock()
	})
	t.Run("read-only", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root may write in a read-only directory")
		}
		home := seed(t)
		if err := os.Chmod(home, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(home, 0o700) })
		check(t, home)
	})
	t.Run("writable", func(t *testing.T) {
		home := seed(t)
		unlock, err := NewFile(home, nil).Lock(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		_ = unlock()
		entries, _ := os.ReadDir(home)
		if len(entries) != 2 {
			t.Errorf("home holds %d entries after Lock, want auth.json and the lock file", len(entries))
		}
	})
}
