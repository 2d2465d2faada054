package enginetest

import (
	"context"
	"sync"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/states"
)

// FaultStore is an effects.Store in front of a real one (a storage.Store on
// a temporary home, say). Everything goes to the real store, except that a
// test can make the next save fail, or let "another process" write just
// before it so that the real compare-and-swap refuses it. It also keeps a
// journal of the saves that reached the real store, so that a test can ask
// what was saved before what was handed out.
type FaultStore struct {
	effects.Store

	mu         sync.Mutex
	failNext   error
	beforeNext func()
	saves      []Save
}

// Save is one save through a FaultStore.
type Save struct {
	Record  states.Record
	Version states.Version
	Err     error
}

// NewFaultStore wraps real.
func NewFaultStore(real effects.Store) *FaultStore { return &FaultStore{Store: real} }

// FailNextSave makes the next Save return err without touching the real
// store, as a full disk or a read-only home would.
func (s *FaultStore) FailNextSave(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = err
}

// BeforeNextSave runs f just before the next Save reaches the real store.
// f typically writes the store as another process would, so that the real
// compare-and-swap finds another version.
func (s *FaultStore) BeforeNextSave(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeNext = f
}

// Armed reports whether a fault set with FailNextSave or BeforeNextSave is
// still waiting for a save.
func (s *FaultStore) Armed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failNext != nil || s.beforeNext != nil
}

// Disarm drops a fault no save used.
func (s *FaultStore) Disarm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.beforeNext = nil, nil
}

// Save implements effects.Store.
func (s *FaultStore) Save(ctx context.Context, rec states.Record,
	expected states.Version) (states.Version, error) {
	s.mu.Lock()
	fail, before := s.failNext, s.beforeNext
	s.failNext, s.beforeNext = nil, nil
	s.mu.Unlock()

	if fail != nil {
		s.journal(Save{Record: rec, Err: fail})
		return states.NoVersion, fail
	}
	if before != nil {
		before()
	}
	v, err := s.Store.Save(ctx, rec, expected)
	s.journal(Save{Record: rec, Version: v, Err: err})
	return v, err
}

func (s *FaultStore) journal(sv Save) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves = append(s.saves, sv)
}

// Saves returns every save attempt so far, in order, with its result.
func (s *FaultStore) Saves() []Save {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Save(nil), s.saves...)
}
