package main

import (
	"strings"
	"testing"
	"time"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
)

// TestWorkLog: the log knows what the manager was busy with at any moment
// of a refresh, including after a caller joined it.
func TestWorkLog(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	var l workLog
	for _, tr := range []engine.Transition{
		{At: at(0), From: states.LoggedOut, To: states.Stale},
		{At: at(1), From: states.Stale, To: states.Refreshing,
			Commands: []effects.Kind{effects.KindLockAndReread}},
		{At: at(2), From: states.Refreshing, To: states.Refreshing}, // a caller joins
		{At: at(3), From: states.Refreshing, To: states.Refreshing,
			Commands: []effects.Kind{effects.KindRedeemRefreshToken}},
		{At: at(4), From: states.Refreshing, To: states.Refreshing,
			Commands: []effects.Kind{effects.KindPersistRecord}},
		{At: at(5), From: states.Refreshing, To: states.Fresh,
			Commands: []effects.Kind{effects.KindReleaseLock, effects.KindNotifyObservers,
				effects.KindWakeAt}},
	} {
		l.record(tr)
	}
	for _, tt := range []struct {
		at   int
		busy bool
		work effects.Kind
	}{
		{-1, false, 0},
		{0, false, 0},
		{1, true, effects.KindLockAndReread},
		{2, true, effects.KindLockAndReread},
		{3, true, effects.KindRedeemRefreshToken},
		{4, true, effects.KindPersistRecord},
		{5, false, 0},
		{9, false, 0},
	} {
		work, busy := l.busyAt(at(tt.at))
		if busy != tt.busy || (busy && work != tt.work) {
			t.Errorf("at +%ds: busy %v with %v, want %v with %v", tt.at, busy, work, tt.busy,
				tt.work)
		}
	}
}

// TestTimeoutLine: giving up is blamed on what was actually awaited.
func TestTimeoutLine(t *testing.T) {
	for _, tt := range []struct {
		work effects.Kind
		busy bool
		want string
	}{
		{effects.KindLockAndReread, true, "another process holds the lock on /srv/codex; " +
			"it may be refreshing"},
		{effects.KindRedeemRefreshToken, true, "the token server did not answer in time"},
		{effects.KindPersistRecord, true, "while the credential was being saved"},
		{effects.KindDeleteStores, true, `run "credctl logout" again`},
		{0, false, "gave up waiting (see --timeout); try again later"},
	} {
		got := timeoutLine(tt.work, tt.busy, "/srv/codex")
		if !strings.Contains(got, tt.want) {
			t.Errorf("busy %v with %v: %q does not say %q", tt.busy, tt.work, got, tt.want)
		}
		if tt.work != effects.KindRedeemRefreshToken && strings.Contains(got, "token server") {
			t.Errorf("busy %v with %v: %q blames the token server", tt.busy, tt.work, got)
		}
	}
}
