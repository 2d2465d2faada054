package main

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"time"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
)

// When a command reaches its --timeout, the engine returns the bare context
// error: the work it waited for (taking the store lock, a request to the
// token endpoint, a save) belongs to the manager, not to the caller, and
// the error does not say which of them was under way. The transitions do:
// each one names the command it started. A session keeps them, so that the
// message can name what credctl was actually waiting for.

// workLog records, for each transition, what the manager was busy with
// after it.
type workLog struct {
	mu    sync.Mutex
	steps []workStep
}

type workStep struct {
	at   time.Time
	busy bool
	work effects.Kind // the command with an outcome under way, when busy
}

// record is the session's engine.Config.OnTransition.
func (l *workLog) record(t engine.Transition) {
	l.mu.Lock()
	defer l.mu.Unlock()
	step := workStep{at: t.At}
	for _, k := range t.Commands {
		if k.HasOutcome() {
			step.busy, step.work = true, k
			break
		}
	}
	if !step.busy && t.To.Waiting() && len(l.steps) > 0 {
		// A caller joined the flight under way (a token request while
		// refreshing): the flight is still at the same command.
		step = l.steps[len(l.steps)-1]
		step.at = t.At
	}
	l.steps = append(l.steps, step)
}

// busyAt returns the command the manager was running at t, if any.
func (l *workLog) busyAt(t time.Time) (effects.Kind, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.steps) - 1; i >= 0; i-- {
		if !l.steps[i].at.After(t) {
			return l.steps[i].work, l.steps[i].busy
		}
	}
	return 0, false
}

// sent reports whether a redemption of the refresh token was under way at
// any step so far.
func (l *workLog) sent() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, st := range l.steps {
		if st.busy && st.work == effects.KindRedeemRefreshToken {
			return true
		}
	}
	return false
}

// gaveUp explains an error that ends a command because its --timeout ran
// out, by what the manager was doing at the deadline. Any other error is
// returned as it is.
//
// It closes the manager first: that delivers every transition up to the
// deadline to the log, and lets a redemption already sent finish and its
// tokens be saved (the provider may have retired the refresh token it
// carried). If that refresh did finish, the message says so instead of
// blaming what was awaited: the next run finds the new tokens.
func (s *session) gaveUp(ctx context.Context, err error) error {
	var ce *cliError
	if err == nil || errors.As(err, &ce) || !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return err
	}
	s.m.Close()
	closed := s.m.Snapshot()
	if msg, ok := refreshedLate(s.opened, closed, s.work.sent()); ok {
		return &cliError{code: exitTransient, err: err, msg: msg}
	}
	if late := answeredLate(s.opened, closed, s.work.sent()); late != nil {
		return late
	}
	work, busy := s.work.busyAt(deadline)
	return &cliError{code: exitTransient, err: err, msg: timeoutLine(work, busy, s.home)}
}

const gaveUpWaiting = "gave up waiting (see --timeout)"

// refreshedLate says that a refresh the command stopped waiting for
// finished afterwards, when it did: a redemption was sent (sent), and the
// snapshot after Close holds newer tokens than the one taken when the
// session opened.
func refreshedLate(opened, closed engine.Snapshot, sent bool) (string, bool) {
	if !sent || closed.Generation == opened.Generation ||
		!closed.LastRefresh.After(opened.LastRefresh) {
		return "", false
	}
	if closed.Unsaved {
		return gaveUpWaiting + "; the refresh finished afterwards, but " + unsavedLine(closed),
			true
	}
	return gaveUpWaiting + ", but the refresh finished afterwards and the new tokens were " +
		"saved; run the command again", true
}

// answeredLate explains a redemption that was sent, and answered with a
// failure only after --timeout ran out (credctl lets it finish): the
// answer, not the wait, is what to report. It returns nil when there was no
// such answer.
func answeredLate(opened, closed engine.Snapshot, sent bool) error {
	switch {
	case !sent:
		return nil
	case closed.State == states.FailedPermanent && opened.State != states.FailedPermanent:
		code, line := permanentLine(closed.Failure, closed.LastError)
		return &cliError{code: code, err: context.DeadlineExceeded,
			msg: "the token server answered after --timeout ran out: " + line}
	case closed.State == states.Stale && !closed.RetryAt.IsZero() && closed.LastError != "":
		return &cliError{code: exitTransient, err: context.DeadlineExceeded,
			msg: "the refresh, let finish after --timeout ran out, failed: " +
				transientLine(closed.RetryAt, closed.LastError, closed.Expiry, time.Now())}
	}
	return nil
}

// timeoutLine says what credctl stopped waiting for at its --timeout. The
// lock case cannot tell whether another process held the lock or the
// --timeout was too short to take a free one, so it says what is true
// either way.
func timeoutLine(work effects.Kind, busy bool, home string) string {
	if !busy {
		return gaveUpWaiting + "; try again later"
	}
	switch work {
	case effects.KindLockAndReread:
		return gaveUpWaiting + " for the lock " + filepath.Join(home, storage.LockFileName) +
			" (another process may hold it while it refreshes); try again later"
	case effects.KindRedeemRefreshToken:
		return gaveUpWaiting + ": the token server did not answer in time; try again later"
	case effects.KindPersistRecord:
		return gaveUpWaiting + " while the credential was being saved in " + home +
			`; "credctl status" shows what is stored now`
	case effects.KindDeleteStores:
		return gaveUpWaiting + " while the stores were being cleared; some may still hold the " +
			`credential: run "credctl logout" again`
	}
	return gaveUpWaiting + "; try again later"
}
