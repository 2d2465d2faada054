package enginetest

import (
	"fmt"
	"sync"
	"time"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/effects/effectstest"
)

// Clock is a manual clock, like effectstest.Clock (which it wraps), whose
// Advance and Set return only once every timer they fired has finished
// running. A manager's timer delivers a Woke event; with this clock a test
// knows that event has been applied when Advance returns, so what it sees
// next does not depend on how goroutines happened to be scheduled.
//
// A timer callback that never returns makes Advance fail after Limit.
type Clock struct {
	inner *effectstest.Clock

	// Limit bounds how long Advance waits for the timers it fired; zero
	// means ten seconds.
	Limit time.Duration

	mu     sync.Mutex
	timers []*settledTimer
}

type settledTimer struct {
	c       *Clock
	at      time.Time
	inner   effects.Timer
	done    chan struct{}
	stopped bool
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{inner: effectstest.NewClock(start)} }

// Now implements effects.Clock.
func (c *Clock) Now() time.Time { return c.inner.Now() }

// AfterFunc implements effects.Clock: f runs in its own goroutine once the
// clock has been moved to now+d or later.
func (c *Clock) AfterFunc(d time.Duration, f func()) effects.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &settledTimer{c: c, at: c.inner.Now().Add(d), done: make(chan struct{})}
	t.inner = c.inner.AfterFunc(d, func() {
		defer close(t.done)
		f()
	})
	c.timers = append(c.timers, t)
	return t
}

// Stop implements effects.Timer.
func (t *settledTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.inner.Stop() {
		t.stopped = true
		return true
	}
	return false
}

// Advance moves the clock forward by d, and returns once the timers that
// became due have run.
func (c *Clock) Advance(d time.Duration) error { return c.Set(c.Now().Add(d)) }

// Set moves the clock to t (never backwards) and returns once the timers
// that became due have run. It fails if one of them is still running after
// Limit.
func (c *Clock) Set(t time.Time) error {
	c.mu.Lock()
	c.inner.Set(t)
	now := c.inner.Now()
	var fired, rest []*settledTimer
	for _, tm := range c.timers {
		switch {
		case tm.stopped:
		case !tm.at.After(now):
			fired = append(fired, tm)
		default:
			rest = append(rest, tm)
		}
	}
	c.timers = rest
	c.mu.Unlock()

	limit := c.Limit
	if limit <= 0 {
		limit = 10 * time.Second
	}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for _, tm := range fired {
		select {
		case <-tm.done:
		case <-deadline.C:
			return fmt.Errorf("enginetest: a timer due at %s still runs after %s", tm.at.Format(time.RFC3339), limit)
		}
	}
	return nil
}

// Pending returns how many timers have neither fired nor been stopped.
func (c *Clock) Pending() int { return c.inner.Pending() }
