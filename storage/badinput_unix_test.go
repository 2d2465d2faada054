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
