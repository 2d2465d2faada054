package storage

import (
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credfsm/credfsm/states"
)

func TestLock_contentionInOneProcess(t *testing.T) {
	home := filepath.Join(t.TempDir(), "codex")
	first, second := NewFile(home, nil), NewFile(home, nil) // two values, one home

	unlock, err := first.Lock(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := contextWithTimeout(t, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = second.Lock(ctx)
	if !errors.Is(err, states.ErrLockTimeout) {
		t.Fatalf("Lock while held: err = %v, want ErrLockTimeout", err)
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("gave up after %v, before the context was done", took)
	}

	// A waiter gets the lock once it is released, and not before.
	var released atomic.Bool
	got := make(chan error, 1)
	go func() {
		u, err := second.Lock(ctxT(t))
		if err == nil {
			if !released.Load() {
				err = errors.New("acquired while still held")
			}
			_ = u()
		}
		got <- err
	}()
	time.Sleep(30 * time.Millisecond)
	released.Store(true)
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Errorf("waiter: %v", err)
	}
	if err := unlock(); err != nil {
		t.Errorf("a second unlock must be harmless: %v", err)
	}
}

// Save, Load and Delete never take the lock, so a holder can use them.
func TestLock_holderCanSaveLoadAndDelete(t *testing.T) {
	ctx := ctxT(t)
	s := NewFile(t.TempDir(), nil)
	unlock, err := s.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	v, err := s.Save(ctx, managedRecord(t, "rt"), states.NoVersion)
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := s.Load(ctx); err != nil || got != v {
		t.Errorf("Load = %s, %v; want %s", got, err, v)
	}
	if _, err := s.Delete(ctx); err != nil {
		t.Error(err)
	}
}

// A context that is already done never acquires, even a free lock.
func TestLock_doneContextNeverAcquires(t *testing.T) {
	ctx, cancel := contextWithTimeout(t, time.Hour)
	cancel()
	if _, err := NewFile(t.TempDir(), nil).Lock(ctx); !errors.Is(err, states.ErrLockTimeout) {
		t.Errorf("err = %v, want ErrLockTimeout", err)
	}
}
