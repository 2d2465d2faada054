package effects

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/credfsm/credfsm/states"
)

// Default time limits of the runner.
const (
	// DefaultLockTimeout bounds the wait for the store's cross-process lock.
	// Another process may hold it for a whole redemption, so it is generous.
	DefaultLockTimeout = 30 * time.Second
)

// ErrNoHostRefresher is the outcome of AskHost when the host registered no
// refresher for host-managed tokens.
var ErrNoHostRefresher = errors.New("effects: no host refresher is registered for host-managed tokens")

// Runner executes commands through the interfaces of this package and turns
// each outcome into the event that goes back into the machine. It decides
// nothing: every choice was made by the rule that emitted the command.
//
// The runner keeps one piece of state, the store lock taken by LockAndReread
// and released by ReleaseLock. Commands must therefore be run one at a time,
// in the order the machine emitted them; the manager guarantees that.
type Runner struct {
	Store    Store
	Endpoint TokenEndpoint
	Host     HostRefresher // nil: AskHost fails with ErrNoHostRefresher
	Clock    Clock         // nil: SystemClock
	Logger   *slog.Logger  // nil: discard

	// Jitter returns a number in [0, 1) that spreads retries; nil uses
	// math/rand/v2.
	Jitter func() float64
	// LockTimeout bounds the wait for the store lock; 0 means
	// DefaultLockTimeout.
	LockTimeout time.Duration

	// Wake is called for WakeAt commands and Notify for NotifyObservers.
	// Either may be nil.
	Wake   func(WakeAt)
	Notify func(NotifyObservers)

	mu     sync.Mutex
	unlock func() error // non-nil while the store lock is held
}

// Run executes one command and returns its outcome, or nil for commands
// without one. ctx bounds the command; the runner adds the lock timeout.
func (r *Runner) Run(ctx context.Context, c Command) states.Event {
	switch c := c.(type) {
	case PersistRecord:
		return r.persist(ctx, c)
	case DeleteStores:
		return r.deleteStores(ctx, c)
	case LockAndReread:
		return r.lockAndReread(ctx, c)
	case ReleaseLock:
		r.releaseLock()
	case RedeemRefreshToken:
		return r.redeem(ctx, c)
	case AskHost:
		return r.askHost(ctx, c)
	case WakeAt:
		if r.Wake != nil {
			r.Wake(c)
		}
	case NotifyObservers:
		if r.Notify != nil {
			r.Notify(c)
		}
	}
	return nil
}

// RunAll executes cmds in order and returns the outcome of the one command
// that has an outcome, or nil. A rule emits at most one such command (the
// transitions table checks this); should a list hold several, the first
// outcome is returned and the rest are reported as an error.
func (r *Runner) RunAll(ctx context.Context, cmds []Command) (states.Event, error) {
	var out states.Event
	var err error
	for _, c := range cmds {
		ev := r.Run(ctx, c)
		switch {
		case ev == nil:
		case out == nil:
			out = ev
		default:
			err = fmt.Errorf("effects: a command list produced a second outcome (%s)", ev.Kind())
		}
	}
	return out, err
}

// HoldsLock reports whether the runner holds the store lock.
func (r *Runner) HoldsLock() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unlock != nil
}

func (r *Runner) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

func (r *Runner) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *Runner) jitter() float64 {
	if r.Jitter == nil {
		return rand.Float64()
	}
	return r.Jitter()
}

func (r *Runner) lockTimeout() time.Duration {
	if r.LockTimeout <= 0 {
		return DefaultLockTimeout
	}
	return r.LockTimeout
}

// takeLock acquires the store lock unless the runner already holds it.
func (r *Runner) takeLock(ctx context.Context) error {
	if r.HoldsLock() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.lockTimeout())
	defer cancel()
	unlock, err := r.Store.Lock(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.unlock = unlock
	r.mu.Unlock()
	return nil
}

func (r *Runner) releaseLock() {
	r.mu.Lock()
	unlock := r.unlock
	r.unlock = nil
	r.mu.Unlock()
	if unlock == nil {
		return
	}
	if err := unlock(); err != nil {
		r.log().Warn("could not release the store lock", "err", err)
	}
}

// persist saves a record. Writers coordinate through the store lock: a save
// that does not already run under it (a login) takes it for the save, so a
// login never slips between another process's re-read and its save.
func (r *Runner) persist(ctx context.Context, c PersistRecord) states.Event {
	held := r.HoldsLock()
	if !held {
		if err := r.takeLock(ctx); err != nil {
			r.log().Warn("could not save the credential", "generation", c.Generation, "err", err)
			return states.PersistFailed{At: r.now(), Generation: c.Generation, Err: err}
		}
		defer r.releaseLock()
	}
	v, err := r.Store.Save(ctx, c.Record, c.Expected)
	if err != nil {
		conflict := errors.Is(err, states.ErrConflict)
		r.log().Warn("could not save the credential",
			"generation", c.Generation, "conflict", conflict, "err", err)
		return states.PersistFailed{At: r.now(), Generation: c.Generation, Conflict: conflict, Err: err}
	}
	r.log().Debug("credential saved", "generation", c.Generation, "mode", c.Record.Mode.String())
	return states.Persisted{At: r.now(), Generation: c.Generation, Version: v}
}

// deleteStores clears every store. Like a save, it runs under the store
// lock: another process may be between its re-read and its save, and a
// delete landing there would be undone by that save. If the lock cannot be
// had in time the stores are cleared anyway, since signing out must not
// depend on another process letting go.
// ClearTimeout bounds the deletion of a credential from the stores, which
// runs to the end even when the context of the logout has ended.
const ClearTimeout = 10 * time.Second

func (r *Runner) deleteStores(ctx context.Context, c DeleteStores) states.Event {
	if !r.HoldsLock() {
		if err := r.takeLock(ctx); err != nil {
			r.log().Warn("clearing the credential without the store lock", "err", err)
		} else {
			defer r.releaseLock()
		}
	}
	// The machine forgot the credential when it emitted this command; a
	// store left holding it would sign the user back in at the next start.
	// So the delete runs even when ctx has ended (the caller gave up, or
	// the manager is closing, while the lock was awaited), within a bound
	// of its own.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ClearTimeout)
	defer cancel()
	removals, err := r.Store.Delete(dctx)
	for _, rm := range removals {
		switch {
		case rm.Err != nil:
			r.log().Warn("could not remove the credential", "store", rm.Backend, "err", rm.Err)
		case rm.Removed:
			r.log().Info("credential removed", "store", rm.Backend)
		}
	}
	return states.StoresCleared{At: r.now(), Generation: c.Generation, Removals: removals, Err: err}
}

func (r *Runner) lockAndReread(ctx context.Context, c LockAndReread) states.Event {
	if err := r.takeLock(ctx); err != nil {
		r.log().Warn("could not lock the store", "err", err)
		return states.RereadFailed{At: r.now(), Generation: c.Generation, Err: err}
	}
	rec, v, err := r.Store.Load(ctx)
	if err != nil {
		unreadable := errors.Is(err, states.ErrUnreadable)
		r.log().Warn("could not re-read the store", "unreadable", unreadable, "err", err)
		return states.RereadFailed{At: r.now(), Generation: c.Generation, Unreadable: unreadable, Err: err}
	}
	return states.StoreReread{At: r.now(), Generation: c.Generation, Record: rec, Version: v}
}

func (r *Runner) redeem(ctx context.Context, c RedeemRefreshToken) states.Event {
	r.log().Info("refreshing tokens", "generation", c.Generation)
	start := r.now()
	g, err := r.Endpoint.Redeem(ctx, c.RefreshToken)
	at := r.now()
	if err == nil {
		r.log().Info("refresh succeeded", "generation", c.Generation,
			"rotated", !g.RefreshToken.IsZero(), "id_token_ok", g.IDTokenErr == nil,
			"took", at.Sub(start))
		return states.RefreshSucceeded{At: at, Generation: c.Generation, Grant: g}
	}
	var re *states.RefreshError
	if !errors.As(err, &re) {
		// Anything unclassified (a cancelled context, a transport error that
		// escaped classification) may pass: treat it as transient.
		re = &states.RefreshError{Err: err}
	}
	if re.Permanent {
		r.log().Warn("refresh refused for good", "generation", c.Generation,
			"reason", re.Reason.String(), "status", re.Status, "code", re.Code)
		return states.RefreshRejected{At: at, Generation: c.Generation, Err: re}
	}
	r.log().Info("refresh failed, will retry later", "generation", c.Generation,
		"status", re.Status, "err", re)
	return states.RefreshFailed{At: at, Generation: c.Generation, Err: re, Jitter: r.jitter()}
}

func (r *Runner) askHost(ctx context.Context, c AskHost) states.Event {
	if r.Host == nil {
		r.log().Warn("host-managed tokens were refused and no host refresher is registered")
		return states.HostRefreshFailed{At: r.now(), Generation: c.Generation,
			Err: ErrNoHostRefresher, Jitter: r.jitter()}
	}
	r.log().Info("asking the host for new tokens", "generation", c.Generation)
	g, err := r.Host.RefreshHost(ctx, c.PreviousAccountID)
	if err != nil {
		r.log().Info("host refresh failed", "generation", c.Generation, "err", err)
		return states.HostRefreshFailed{At: r.now(), Generation: c.Generation, Err: err, Jitter: r.jitter()}
	}
	r.log().Info("host refresh succeeded", "generation", c.Generation)
	return states.HostRefreshSucceeded{At: r.now(), Generation: c.Generation, Grant: g}
}
