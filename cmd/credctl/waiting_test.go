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

// TestTimeoutLine: giving up is blamed on what was actually awaited, and
// no more is claimed than is known: a wait for the lock may have been too
// short to take a lock nobody held.
func TestTimeoutLine(t *testing.T) {
	for _, tt := range []struct {
		work effects.Kind
		busy bool
		want string
	}{
		{effects.KindLockAndReread, true, "gave up waiting (see --timeout) for the lock " +
			"/srv/codex/auth.json.lock (another process may hold it while it refreshes); try again later"},
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
		if strings.Contains(got, "holds the lock") {
			t.Errorf("busy %v with %v: %q says for sure that the lock is held", tt.busy,
				tt.work, got)
		}
	}
}

// TestRefreshedLate: a refresh whose redemption was sent before the
// deadline and that finished while the manager closed is reported as
// done, saved or not; anything else is left to timeoutLine.
func TestRefreshedLate(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)
	opened := engine.Snapshot{State: states.Stale, Generation: 1, LastRefresh: t0}
	refreshed := engine.Snapshot{State: states.Fresh, Generation: 2,
		LastRefresh: t0.Add(time.Hour)}
	unsaved := refreshed
	unsaved.Unsaved = true
	unsaved.LastError = "the credential could not be saved: storage: /h/auth.json changed " +
		"since it was read"
	for _, tt := range []struct {
		name   string
		closed engine.Snapshot
		sent   bool
		want   string // "" when nothing is to be said
	}{
		{"saved", refreshed, true, "gave up waiting (see --timeout), but the refresh finished " +
			"afterwards and the new tokens were saved; run the command again"},
		{"unsaved", unsaved, true, "gave up waiting (see --timeout); the refresh finished " +
			"afterwards, but the new tokens could not be saved (storage: /h/auth.json changed " +
			`since it was read) and are lost when credctl exits; "credctl status" shows what ` +
			"is stored now"},
		{"nothing changed", opened, true, ""},
		{"no redemption was sent", refreshed, false, ""},
		{"the refresh failed", engine.Snapshot{State: states.Stale, Generation: 1,
			LastRefresh: t0, LastError: "HTTP 503"}, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := refreshedLate(opened, tt.closed, tt.sent)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("refreshedLate = %q, %v\nwant %q", got, ok, tt.want)
			}
		})
	}
}
