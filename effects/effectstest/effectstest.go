// Package effectstest provides test doubles for the interfaces of package
// effects: a store in memory with a real lock and compare-and-swap, a clock
// moved by hand, and function adapters for the token endpoint and the host.
// Hosts can use them to test their own integrations without disk or network.
package effectstest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/states"
)

// MemStore is an effects.Store in memory. Versions count saves. Its lock is
// exclusive across all users of the same MemStore, like a file lock across
// processes. Fail hooks let a test inject errors per operation.
type MemStore struct {
	mu      sync.Mutex
	rec     states.Record
	version states.Version
	saves   int
	lock    chan struct{}

	// FailLoad, FailSave and FailDelete, when set, are called before the
	// operation; a non-nil result is returned as its error.
	FailLoad   func() error
	FailSave   func(states.Record) error
	FailDelete func() error
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{lock: make(chan struct{}, 1)}
}

// Put replaces the stored record as another process would (unconditionally),
// and returns the new version.
func (s *MemStore) Put(rec states.Record) states.Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putLocked(rec)
}

func (s *MemStore) putLocked(rec states.Record) states.Version {
	s.saves++
	s.rec = rec
	s.version = states.Version(fmt.Sprintf("v%d", s.saves))
	if rec.IsZero() {
		s.version = states.NoVersion
	}
	return s.version
}

// Get returns the stored record and version.
func (s *MemStore) Get() (states.Record, states.Version) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec, s.version
}

// Load implements effects.Store.
func (s *MemStore) Load(ctx context.Context) (states.Record, states.Version, error) {
	if s.FailLoad != nil {
		if err := s.FailLoad(); err != nil {
			return states.Record{}, states.NoVersion, err
		}
	}
	r, v := s.Get()
	return r, v, nil
}

// Save implements effects.Store with compare-and-swap.
func (s *MemStore) Save(ctx context.Context, rec states.Record, expected states.Version) (states.Version, error) {
	if s.FailSave != nil {
		if err := s.FailSave(rec); err != nil {
			return states.NoVersion, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if expected != states.AnyVersion && expected != s.version {
		return states.NoVersion, fmt.Errorf("memstore: holds %q, expected %q: %w",
			s.version, expected, states.ErrConflict)
	}
	return s.putLocked(rec), nil
}

// Delete implements effects.Store.
func (s *MemStore) Delete(ctx context.Context) ([]states.Removal, error) {
	if s.FailDelete != nil {
		if err := s.FailDelete(); err != nil {
			return []states.Removal{{Backend: "memory", Err: err}}, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	removed := !s.rec.IsZero()
	s.rec = states.Record{}
	s.version = states.NoVersion
	return []states.Removal{{Backend: "memory", Removed: removed}}, nil
}

// Lock implements effects.Store.
func (s *MemStore) Lock(ctx context.Context) (func() error, error) {
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("memstore: %w: %v", states.ErrLockTimeout, ctx.Err())
	}
	var once sync.Once
	return func() error {
		released := false
		once.Do(func() { <-s.lock; released = true })
		if !released {
			return errors.New("memstore: lock released twice")
		}
		return nil
	}, nil
}

// Info implements effects.Store.
func (s *MemStore) Info() states.StoreInfo {
	return states.StoreInfo{Kind: "memory", Location: "test double"}
}

// EndpointFunc adapts a function to effects.TokenEndpoint.
type EndpointFunc func(ctx context.Context, refreshToken states.Secret) (states.Grant, error)

// Redeem calls f.
func (f EndpointFunc) Redeem(ctx context.Context, rt states.Secret) (states.Grant, error) {
	return f(ctx, rt)
}

// HostFunc adapts a function to effects.HostRefresher.
type HostFunc func(ctx context.Context, previousAccountID string) (states.Grant, error)

// RefreshHost calls f.
func (f HostFunc) RefreshHost(ctx context.Context, prev string) (states.Grant, error) {
	return f(ctx, prev)
}

// Clock is an effects.Clock that moves only when told. Timers fire, in time
// order, when Advance or Set passes their deadline.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

type timer struct {
	c       *Clock
	at      time.Time
	f       func()
	stopped bool
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now implements effects.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements effects.Clock. f runs in its own goroutine when the
// clock passes now+d.
func (c *Clock) AfterFunc(d time.Duration, f func()) effects.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock forward by d and fires the timers that are due.
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Set moves the clock to t (never backwards) and fires the timers that are
// due, in deadline order.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	if t.After(c.now) {
		c.now = t
	}
	var due, rest []*timer
	for _, tm := range c.timers {
		switch {
		case tm.stopped:
		case !tm.at.After(c.now):
			due = append(due, tm)
		default:
			rest = append(rest, tm)
		}
	}
	c.timers = rest
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, tm := range due {
		go tm.f()
	}
}

// Pending returns how many timers have not fired or been stopped.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, tm := range c.timers {
		if !tm.stopped {
			n++
		}
	}
	return n
}

// Stop implements effects.Timer.
func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.stopped {
		return false
	}
	for _, tm := range t.c.timers {
		if tm == t {
			t.stopped = true
			return true
		}
	}
	return false
}
