package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// DefaultRefreshTimeout bounds one refresh from start to finish: waiting for
// the store lock and the redemption. It runs under the manager's lifetime,
// not a caller's. Saving what a redemption returned gets a budget of the same
// length of its own (see fly).
const DefaultRefreshTimeout = 2 * time.Minute

// Manager is the host-facing API over one credential. It is safe for
// concurrent use. Create it with New, and Close it when done.
//
// Events are applied to the Machine one at a time. Commands run on the
// effects runner in the order the machine emitted them; a command list that
// produces an outcome (a save, a re-read, a redemption) runs in a goroutine of
// the manager, so that callers who stop waiting do not abort it.
//
// Invariant: at most one such chain runs at a time ("a flight"). While it
// runs, only events that the table answers without commands are applied
// (token requests and 401s in refreshing wait for the outcome); everything
// else waits for the flight to end.
type Manager struct {
	clock   effects.Clock
	log     *slog.Logger
	runner  *effects.Runner
	store   effects.Store
	loadEnv func() (states.Record, bool)
	every   bool // step the machine on every Token call
	// accountHeader: send ChatGPT-Account-ID (Codex credentials).
	accountHeader bool
	timeout       time.Duration

	base   context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	machine *Machine
	settled chan struct{} // closed by NotifyObservers, then replaced
	flight  bool
	flights uint64        // flights started so far
	idle    chan struct{} // closed when the current flight ends
	timer   effects.Timer
	closed  bool

	// What the last DeleteStores did, for Logout to report.
	lastRemovals []states.Removal
	lastClearErr error

	// cause is the error of the outcome that set the machine's LastError,
	// kept so that a TransientError can wrap it; nil once LastError clears.
	cause error

	host hostSwitch

	view atomic.Pointer[view]
	subs subscribers
}

// view is an immutable picture of the machine, published after every step
// for the lock-free hot path and Snapshot.
type view struct {
	closed   bool // Close was called: only the locked path answers
	state    states.State
	bearer   string
	gen      uint64
	staleAt  time.Time
	hasStale bool
	snap     Snapshot
	cause    error // the error behind snap.LastError, when an outcome carried one
}

// newManager wires a manager from parts; New builds the parts from a Config.
func newManager(p parts) *Manager {
	base, cancel := context.WithCancel(context.Background())
	m := &Manager{
		clock:         p.clock,
		log:           p.log,
		store:         p.store,
		loadEnv:       p.loadEnv,
		every:         p.stepEveryRequest,
		accountHeader: p.accountHeader,
		timeout:       p.refreshTimeout,
		base:          base,
		cancel:        cancel,
		machine:       NewMachine(p.table, p.policy),
		settled:       make(chan struct{}),
		idle:          make(chan struct{}),
	}
	close(m.idle)
	m.runner = &effects.Runner{
		Store:       p.store,
		Endpoint:    p.endpoint,
		Host:        &m.host,
		Clock:       p.clock,
		Logger:      p.log,
		LockTimeout: p.lockTimeout,
	}
	m.host.timeout = p.hostTimeout
	if p.onTransition != nil {
		m.subs.add(p.onTransition)
	}
	m.subs.start(&m.wg)
	m.publishLocked()
	return m
}

// parts are the resolved pieces of a Config.
type parts struct {
	table            *transitions.Table
	policy           transitions.Policy
	store            effects.Store
	endpoint         effects.TokenEndpoint
	hostTimeout      time.Duration
	clock            effects.Clock
	log              *slog.Logger
	loadEnv          func() (states.Record, bool)
	lockTimeout      time.Duration
	refreshTimeout   time.Duration
	stepEveryRequest bool
	accountHeader    bool
	onTransition     func(Transition)
}

// Close stops timers, waits for a refresh in flight to finish (a wait for
// the store lock is cut short; a redemption already sent, and the save of
// its tokens, are let finish, within the refresh timeout), releases the
// store lock if held and stops delivering transitions. Calls after Close
// return ErrClosed. Close is idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.publishLocked() // the hot path reads closed from the view
	if m.timer != nil {
		m.timer.Stop()
	}
	close(m.settled) // wake every waiter; they will see closed
	m.settled = make(chan struct{})
	m.mu.Unlock()

	m.cancel()
	m.subs.stop()
	m.wg.Wait()
	m.runner.Run(context.Background(), effects.ReleaseLock{})
	return nil
}

// --- stepping --------------------------------------------------------------

// apply waits until ev may be applied, applies it and starts its commands.
// build makes the event from the time it is applied, so that events carry
// the time the machine saw them. It returns the result, the view the step
// published and, when the step started a flight, the channel closed when
// that flight ends.
//
// Callers answer from the returned view, never from a later m.view.Load():
// by then another step may have published a different state (a logout, say),
// and a token read from it would not match the result.
//
// build runs under m.mu. It may return nil to withdraw the event, for
// example because what it carries is out of date; apply then returns
// errWithdrawn without stepping.
func (m *Manager) apply(ctx context.Context,
	build func(now time.Time) states.Event) (Result, *view, <-chan struct{}, error) {
	m.mu.Lock()
	ev := build(m.clock.Now())
	for ev != nil && m.flight && !(m.machine.State().Waiting() && joinsFlight(ev.Kind())) {
		idle := m.idle
		m.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return Result{}, nil, nil, ctx.Err()
		}
		m.mu.Lock()
		ev = build(m.clock.Now())
	}
	defer m.mu.Unlock()
	if m.closed {
		return Result{}, nil, nil, ErrClosed
	}
	if ev == nil {
		return Result{}, nil, nil, errWithdrawn
	}
	res, err := m.stepLocked(ev)
	if err != nil {
		return res, nil, nil, err
	}
	v := m.view.Load()
	return res, v, m.startLocked(res.Commands), nil
}

// errWithdrawn is returned by apply when build withdrew its event.
var errWithdrawn = errors.New("engine: event withdrawn")

// joinsFlight reports whether an event of kind k may be applied while a
// flight runs in a waiting state. The table answers these there without
// commands: the caller joins the outcome under way. Every other event (a
// login, a logout, a load) is permitted only in resting states, so it waits
// until the flight ends.
func joinsFlight(k states.EventKind) bool {
	switch k {
	case states.KindTokenRequested, states.KindRefreshRequested, states.KindUnauthorized,
		states.KindWoke:
		return true
	}
	return false
}

// stepLocked applies one event and publishes the result. m.mu is held.
func (m *Manager) stepLocked(ev states.Event) (Result, error) {
	prevErr := m.machine.Extended().LastError
	res, err := m.machine.Step(ev)
	if err != nil {
		return res, err
	}
	if e, ok := ev.(states.StoresCleared); ok {
		m.lastRemovals, m.lastClearErr = e.Removals, e.Err
	}
	switch lastErr := m.machine.Extended().LastError; {
	case lastErr == "":
		m.cause = nil
	case causeOf(ev) != nil:
		m.cause = causeOf(ev)
	case lastErr != prevErr:
		m.cause = nil // a failure that carried no error of its own
	}
	m.publishLocked()
	t := newTransition(res, ev.Time())
	m.log.Debug("transition", "rule", t.Rule, "event", t.Event.String(),
		"from", t.From.String(), "to", t.To.String(), "generation", t.Generation)
	if t.To == states.FailedPermanent && t.From != states.FailedPermanent {
		ext := m.machine.Extended()
		m.log.Warn("credential failed permanently", "reason", ext.Failure.String(),
			"detail", ext.LastError)
	}
	m.subs.publish(t)
	return res, nil
}

// causeOf returns the error a failed outcome carries, if any. Errors from
// stores and endpoints never hold a secret.
func causeOf(ev states.Event) error {
	switch e := ev.(type) {
	case states.Loaded:
		return e.Err
	case states.RereadFailed:
		return e.Err
	case states.PersistFailed:
		return e.Err
	case states.HostRefreshFailed:
		return e.Err
	case states.RefreshFailed:
		if e.Err != nil {
			return e.Err
		}
	case states.RefreshRejected:
		if e.Err != nil {
			return e.Err
		}
	}
	return nil
}

// startLocked runs the commands of a step. Commands without an outcome
// (release the lock, notify, set a timer) are quick and run at once, in
// order. A list with an outcome starts a flight. m.mu is held.
func (m *Manager) startLocked(cmds []effects.Command) <-chan struct{} {
	if len(cmds) == 0 {
		return nil
	}
	if !hasOutcome(cmds) {
		for _, c := range cmds {
			m.runLocalLocked(c)
		}
		return nil
	}
	if m.flight {
		// The table answers events in waiting states without commands, and
		// apply holds every other event until the flight ends; reaching
		// this means a custom table broke that rule.
		m.log.Error("a step started commands while a flight was running; dropping them",
			"state", m.machine.State().String())
		return nil
	}
	m.flight = true
	m.flights++
	m.idle = make(chan struct{})
	idle := m.idle
	m.wg.Add(1)
	go m.fly(cmds)
	return idle
}

func hasOutcome(cmds []effects.Command) bool {
	for _, c := range cmds {
		if c.Kind().HasOutcome() {
			return true
		}
	}
	return false
}

// fly runs a chain of commands: each list's outcome is applied as the next
// event, whose commands run next, until a step yields no outcome.
func (m *Manager) fly(cmds []effects.Command) {
	defer m.wg.Done()
	ctx, cancel := context.WithTimeout(m.base, m.timeout)
	defer cancel()

	for len(cmds) > 0 {
		var outcome states.Event
		for _, c := range cmds {
			switch c.Kind() {
			case effects.KindNotifyObservers, effects.KindWakeAt:
				m.mu.Lock()
				m.runLocalLocked(c)
				m.mu.Unlock()
			case effects.KindRedeemRefreshToken, effects.KindPersistRecord:
				if ev := m.runToEnd(ctx, c); ev != nil && outcome == nil {
					outcome = ev
				}
			default:
				if ev := m.runner.Run(ctx, c); ev != nil && outcome == nil {
					outcome = ev
				}
			}
		}
		if outcome == nil {
			break
		}
		m.mu.Lock()
		res, err := m.stepLocked(outcome)
		m.mu.Unlock()
		if err != nil {
			m.log.Error("the machine refused an outcome", "event", outcome.Kind().String(), "err", err)
			m.runner.Run(ctx, effects.ReleaseLock{})
			break
		}
		cmds = res.Commands
	}

	m.mu.Lock()
	m.flight = false
	close(m.idle)
	// Wake waiters even if a broken chain never notified them; they see
	// that no flight runs and stop waiting.
	close(m.settled)
	m.settled = make(chan struct{})
	m.mu.Unlock()
}

// runToEnd runs a redemption or a save of a flight under a budget of its
// own, which neither the refresh running out of time nor Close can cut
// short. Once a redemption is sent, the provider may have served it and
// retired the refresh token it carried: its answer holds the only live one,
// and cutting the request off would lose it. Once the answer is in, the
// record to save holds it: if the save were cut short, the store would keep
// the spent token for every process sharing it to replay.
//
// TODO: a redemption that times out at the HTTP client (oauth's own
// timeout) after it was sent is still lost the same way; only a provider
// that accepts the previous refresh token for a grace period can save it.
func (m *Manager) runToEnd(ctx context.Context, c effects.Command) states.Event {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.timeout)
	defer cancel()
	return m.runner.Run(ctx, c)
}

// runLocalLocked runs the commands that act on the manager itself. m.mu is
// held.
func (m *Manager) runLocalLocked(c effects.Command) {
	switch c := c.(type) {
	case effects.NotifyObservers:
		close(m.settled)
		m.settled = make(chan struct{})
	case effects.WakeAt:
		m.wakeAtLocked(c)
	default:
		m.runner.Run(m.base, c)
	}
}

// wakeAtLocked keeps one timer: the latest WakeAt replaces any earlier one.
func (m *Manager) wakeAtLocked(c effects.WakeAt) {
	if m.timer != nil {
		m.timer.Stop()
	}
	if m.closed {
		return
	}
	d := c.At.Sub(m.clock.Now())
	if d < 0 {
		d = 0
	}
	gen := c.Generation
	m.timer = m.clock.AfterFunc(d, func() {
		_, _, _, err := m.apply(m.base, func(now time.Time) states.Event {
			return states.Woke{At: now, Generation: gen}
		})
		if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) {
			m.log.Debug("timer event refused", "err", err)
		}
	})
}

// waitSettled waits until the machine leaves a waiting state. It returns the
// view it found settled (read under the lock, so never a waiting one), or
// ctx.Err() if the caller gives up first, ErrClosed, or ErrInternal when no
// flight is running to settle it.
func (m *Manager) waitSettled(ctx context.Context) (*view, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		st := m.machine.State()
		if !st.Waiting() {
			v := m.view.Load()
			m.mu.Unlock()
			return v, nil
		}
		if !m.flight {
			m.mu.Unlock()
			return nil, fmt.Errorf("%w: stuck in %s with nothing in flight", ErrInternal, st)
		}
		ch := m.settled
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// --- publishing ------------------------------------------------------------

func (m *Manager) publishLocked() {
	st := m.machine.State()
	ext := m.machine.Extended()
	pol := m.machine.Policy()
	v := &view{closed: m.closed, state: st, gen: ext.Generation, bearer: ext.Record.Bearer().Reveal(),
		cause: m.cause}
	v.staleAt, v.hasStale = pol.StaleAt(ext.Record)
	v.snap = Snapshot{
		State:       st,
		Mode:        ext.Record.Mode,
		Email:       ext.Record.Claims.Email,
		Plan:        ext.Record.Claims.Plan,
		UserID:      ext.Record.Claims.UserID,
		AccountID:   ext.Record.AccountID(),
		Expiry:      ext.Record.AccessExpiry,
		LastRefresh: ext.Record.LastRefresh,
		Failure:     ext.Failure,
		LastError:   ext.LastError,
		RetryAt:     ext.RetryAt,
		Store:       m.store.Info(),
		Generation:  ext.Generation,
		FromEnv:     ext.FromEnv,
		Unsaved:     ext.Unsaved,
	}
	if v.hasStale && (st == states.Fresh || st == states.Stale) {
		v.snap.StaleAt = v.staleAt
	}
	m.view.Store(v)
}

// Snapshot returns the state of the credential at the last step. It takes
// no lock.
func (m *Manager) Snapshot() Snapshot { return m.view.Load().snap }

// Snapshot is what a status display needs. It holds no secret.
type Snapshot struct {
	State states.State
	Mode  states.Mode

	Email     string
	Plan      states.Plan
	UserID    string
	AccountID string

	Expiry      time.Time // access-token expiry; zero when unknown
	StaleAt     time.Time // when the tokens count as stale; zero when unknown
	LastRefresh time.Time // zero when unknown

	Failure   states.Reason // set in failed_permanent
	LastError string        // the last failure, sanitised
	RetryAt   time.Time     // earliest next refresh after a transient failure

	Store      states.StoreInfo
	Generation uint64
	FromEnv    bool // the credential is CODEX_API_KEY from the environment
	Unsaved    bool // the tokens in use could not be saved
}

// Transition is one step of the machine as subscribers see it. It holds no
// secret.
type Transition struct {
	At         time.Time
	Rule       string
	Event      states.EventKind
	From, To   states.State
	Commands   []effects.Kind
	Generation uint64
}

func newTransition(res Result, at time.Time) Transition {
	t := Transition{At: at, Rule: res.Rule, Event: res.Event, From: res.From, To: res.To,
		Generation: res.Generation}
	for _, c := range res.Commands {
		t.Commands = append(t.Commands, c.Kind())
	}
	return t
}

// Subscribe registers fn to receive every transition, in order, from a
// goroutine of the manager. fn must not block for long; it may call the
// manager (but not Close). The returned function unsubscribes.
//
// The load in New happens before Subscribe can be called; to see it, pass
// a subscriber as Config.OnTransition.
//
// TODO: the queue to a slow subscriber is unbounded; a subscriber that
// never returns holds every later transition in memory.
func (m *Manager) Subscribe(fn func(Transition)) (unsubscribe func()) {
	return m.subs.add(fn)
}
