//go:build !windows

package storage

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

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
