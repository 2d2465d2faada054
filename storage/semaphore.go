package storage

import (
	"context"
	"path/filepath"
	"sync"
)

// keyedMutex is a process-wide table of mutexes named by string, each of
// which can be waited for with a context. Entries are never removed; there
// is one per home directory a process uses, which stays small.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// acquire waits for the mutex named key until ctx is done and returns the
// function that releases it (idempotent).
func (k *keyedMutex) acquire(ctx context.Context, key string) (release func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]chan struct{}{}
	}
	ch, ok := k.m[key]
	if !ok {
		ch = make(chan struct{}, 1)
		k.m[key] = ch
	}
	k.mu.Unlock()

	// A done context never acquires, even when the mutex is free: select
	// would otherwise pick either case at random.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case ch <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-ch }) }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

var (
	// storeLocks backs Lock: one entry per lock file, or per memory entry
	// for the ephemeral store. Within a process it queues callers without
	// polling; across processes the lock file does the work.
	storeLocks keyedMutex

	// ioLocks makes each compare-and-swap save (and each delete) atomic
	// within the process, across every store value that shares a home.
	// Across processes that is what Lock is for.
	//
	// Invariant: it is held only for the duration of one Save or Delete
	// and never while waiting for storeLocks, so a caller holding Lock can
	// always call Save.
	ioLocks keyedMutex
)

// ioKey names a home for ioLocks. Absolute and cleaned, so that "x" and
// "./x" share one mutex; not canonical, which would cost a system call per
// save and only matters for one home reached through two symlinks.
func ioKey(home string) string {
	if abs, err := filepath.Abs(home); err == nil {
		return abs
	}
	return filepath.Clean(home)
}
