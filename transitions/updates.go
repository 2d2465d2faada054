package transitions

import (
	"time"

	"github.com/credfsm/credfsm/states"
)

// The updates of the table: how a rule changes the extended state. Each is
// pure; next starts as a copy of the extended state before the event.

// adopt makes rec the current credential. A different credential gets a new
// generation and starts with a clean slate (no failure, no backoff); the same
// credential keeps its generation, so tokens already handed out stay current.
func adopt(next *states.Extended, rec states.Record, v states.Version, fromEnv bool) {
	if !rec.SameCredential(next.Record) || fromEnv != next.FromEnv {
		next.Generation++
		next.LastError = ""
		next.RetryAt = time.Time{}
		next.Attempts = 0
		next.Unsaved = false
	}
	next.Record = rec
	next.Version = v
	next.FromEnv = fromEnv
	next.Failure = states.ReasonNone
}

// fail clears the credential and records why it failed for good.
func fail(next *states.Extended, r states.Reason, why string) {
	next.Generation++
	next.Record = states.Record{}
	next.FromEnv = false
	next.Failure = r
	next.LastError = why
	next.RetryAt = time.Time{}
	next.Attempts = 0
	next.Unsaved = false
	forgetRecovery(next)
}

// forgetRecovery ends the cooldown of the last recovery.
func forgetRecovery(next *states.Extended) {
	next.RecoveryAt, next.RecoveryFrom = time.Time{}, 0
}

// backoff records a transient failure and when the next attempt may start.
func backoff(in Input, next *states.Extended, hint time.Duration, jitter float64, why string) {
	next.Attempts++
	next.RetryAt = in.Event.Time().Add(in.Policy.Backoff(next.Attempts, hint, jitter))
	next.LastError = why
}

// errText renders an error for LastError; errors from stores and endpoints
// never carry secrets.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

var (
	adoptLoaded = Update{"adopt the loaded credential", func(in Input, next *states.Extended) {
		e := in.Event.(states.Loaded)
		if !e.Record.SameCredential(next.Record) || e.FromEnv != next.FromEnv {
			// Someone else put this credential in the store; the cooldown
			// was about the tokens of the last recovery.
			forgetRecovery(next)
		}
		adopt(next, e.Record, e.Version, e.FromEnv)
	}}

	failUnreadableLoad = Update{"fail: unreadable store", func(in Input, next *states.Extended) {
		e := in.Event.(states.Loaded)
		fail(next, states.ReasonUnreadableStore, errText(e.Err))
		next.Version = e.Version
	}}

	failRestricted = Update{"fail: restricted", func(in Input, next *states.Extended) {
		rec := eventRecord(in.Event)
		fail(next, states.ReasonRestricted, in.Policy.Violation(rec))
		if e, ok := in.Event.(states.StoreReread); ok {
			next.Version = e.Version
		}
	}}

	login = Update{"adopt the new credential", func(in Input, next *states.Extended) {
		e := in.Event.(states.LoginRequested)
		// A login is always a new generation, even with the same tokens:
		// whatever happened to the previous session is over.
		next.Record = states.Record{}
		adopt(next, e.Record, next.Version, false)
		forgetRecovery(next)
	}}

	noteRecovery = Update{"note the recovery", func(in Input, next *states.Extended) {
		next.RecoveryAt = in.Event.Time()
		next.RecoveryFrom = next.Generation
	}}

	logout = Update{"forget the credential", func(in Input, next *states.Extended) {
		gen := next.Generation + 1
		*next = states.Extended{Generation: gen, Version: next.Version}
	}}

	cleared = Update{"note the stores are empty", func(in Input, next *states.Extended) {
		e := in.Event.(states.StoresCleared)
		next.Version = states.NoVersion
		if e.Err != nil {
			next.LastError = "some stores could not be cleared: " + errText(e.Err)
		}
	}}

	noteVersion = Update{"note the store version", func(in Input, next *states.Extended) {
		next.Version = in.Event.(states.StoreReread).Version
	}}

	noteLoadedVersion = Update{"note the store version", func(in Input, next *states.Extended) {
		next.Version = in.Event.(states.Loaded).Version
	}}

	adoptStored = Update{"adopt the stored credential", func(in Input, next *states.Extended) {
		e := in.Event.(states.StoreReread)
		adopt(next, e.Record, e.Version, false)
	}}

	applyGrant = Update{"apply the new tokens", func(in Input, next *states.Extended) {
		e := in.Event.(states.RefreshSucceeded)
		applyTokens(next, e.Grant, e.At)
	}}

	applyHostGrant = Update{"apply the host's tokens", func(in Input, next *states.Extended) {
		e := in.Event.(states.HostRefreshSucceeded)
		applyTokens(next, e.Grant, e.At)
		// Host-managed tokens belong to the account their id token names.
		if e.Grant.IDTokenErr == nil && e.Grant.Claims.AccountID != "" {
			next.Record.Tokens.AccountID = e.Grant.Claims.AccountID
		}
	}}

	saved = Update{"note the saved version", func(in Input, next *states.Extended) {
		next.Version = in.Event.(states.Persisted).Version
		next.Unsaved = false
	}}

	unsaved = Update{"keep the tokens unsaved", func(in Input, next *states.Extended) {
		e := in.Event.(states.PersistFailed)
		next.Unsaved = true
		next.LastError = "the credential could not be saved: " + errText(e.Err)
	}}

	backoffRefresh = Update{"back off", func(in Input, next *states.Extended) {
		e := in.Event.(states.RefreshFailed)
		var hint time.Duration
		if e.Err != nil {
			hint = e.Err.RetryAfter
		}
		backoff(in, next, hint, e.Jitter, refreshErrText(e.Err))
	}}

	backoffReread = Update{"back off", func(in Input, next *states.Extended) {
		e := in.Event.(states.RereadFailed)
		backoff(in, next, 0, 0.5, "the store could not be locked or read: "+errText(e.Err))
	}}

	backoffHost = Update{"back off", func(in Input, next *states.Extended) {
		e := in.Event.(states.HostRefreshFailed)
		backoff(in, next, 0, e.Jitter, "the host could not refresh the tokens: "+errText(e.Err))
	}}

	backoffMismatch = Update{"back off", func(in Input, next *states.Extended) {
		e := in.Event.(states.HostRefreshSucceeded)
		why := in.Policy.WorkspaceMismatch(e.Grant.Claims)
		if e.Grant.IDTokenErr != nil {
			why = "the host's id token cannot be read to check the required workspace: " +
				e.Grant.IDTokenErr.Error()
		}
		backoff(in, next, 0, 0.5, why)
	}}

	failRejected = Update{"fail: refused", func(in Input, next *states.Extended) {
		e := in.Event.(states.RefreshRejected)
		reason := states.ReasonUnknown
		if e.Err != nil && e.Err.Reason != states.ReasonNone {
			reason = e.Err.Reason
		}
		// The record is kept, so that a reload finding the same dead
		// credential stays failed instead of redeeming it again.
		next.Failure = reason
		next.LastError = refreshErrText(e.Err)
		next.RetryAt = time.Time{}
		next.Attempts = 0
	}}

	failUnreadableReread = Update{"fail: unreadable store", func(in Input, next *states.Extended) {
		e := in.Event.(states.RereadFailed)
		fail(next, states.ReasonUnreadableStore, errText(e.Err))
	}}
)

func refreshErrText(err *states.RefreshError) string {
	if err == nil {
		return "refresh failed"
	}
	return err.Error()
}

// applyTokens merges a grant into the record. A field the grant leaves empty
// keeps its value: a provider that does not rotate the refresh token sends
// none. An id token that cannot be parsed is not adopted (the store must stay
// loadable), but the access and refresh tokens still are: dropping a rotated
// refresh token would lose the session.
func applyTokens(next *states.Extended, g states.Grant, at time.Time) {
	t := &next.Record.Tokens
	if !g.AccessToken.IsZero() {
		t.AccessToken = g.AccessToken
		next.Record.AccessExpiry = g.AccessExpiry
	}
	if !g.RefreshToken.IsZero() {
		if !g.RefreshToken.Equal(t.RefreshToken) {
			// The provider rotated the token: the one redeemed is spent.
			next.Spent = t.RefreshToken
		}
		t.RefreshToken = g.RefreshToken
	}
	next.LastError = ""
	if !g.IDToken.IsZero() {
		if g.IDTokenErr == nil {
			t.IDToken = g.IDToken
			next.Record.Claims = g.Claims
		} else {
			next.LastError = "the new id token could not be parsed and was not kept: " +
				g.IDTokenErr.Error()
		}
	}
	next.Record.LastRefresh = at
	next.Generation++
	next.RetryAt = time.Time{}
	next.Attempts = 0
}
