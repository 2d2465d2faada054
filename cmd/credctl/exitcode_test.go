package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
)

// TestDescribe: every kind of failure maps to its documented exit code and
// to a line that says what to do.
func TestDescribe(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantLine string
	}{
		{"bad input", badInput("unknown --store %q", "x"), exitError, `unknown --store "x"`},
		{"logged out", fmt.Errorf("%w: sign in", engine.ErrLoggedOut), exitLoggedOut,
			"not signed in"},
		{"reused", &engine.PermanentError{Reason: states.ReasonReused, Detail: "HTTP 401"},
			exitSignIn, "the refresh token was already used, probably by another process or " +
				"machine sharing this login; sign in again; give each machine its own login " +
				"instead of copying auth.json (HTTP 401)"},
		{"revoked, wrapped", fmt.Errorf("x: %w", &engine.PermanentError{Reason: states.ReasonRevoked}),
			exitSignIn, "the refresh token was revoked; sign in again"},
		{"unreadable store is bad input",
			&engine.PermanentError{Reason: states.ReasonUnreadableStore, Detail: "storage: bad"},
			exitError, "the stored credential cannot be read; repair or remove"},
		{"transient", &engine.TransientError{Detail: "HTTP 503"}, exitTransient,
			"the tokens could not be refreshed right now (HTTP 503); try again later"},
		{"timeout", fmt.Errorf("x: %w", context.DeadlineExceeded), exitTransient,
			"gave up waiting (see --timeout); try again later"},
		{"interrupted", context.Canceled, exitError, "interrupted"},
		{"api key", engine.ErrNotRefreshable, exitError,
			"the credential is an API key, which is never refreshed"},
		{"other", errors.New("engine: something\nodd"), exitError, "something odd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, line := describe(tt.err)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if !strings.HasPrefix(line, tt.wantLine) {
				t.Errorf("line %q\nwant it to start %q", line, tt.wantLine)
			}
			if strings.Contains(line, "\n") {
				t.Errorf("line %q spans several lines", line)
			}
		})
	}
}

// TestTransientLine: a failed refresh is reported with what it means for
// the access token in hand, which may well be valid for a long while yet.
func TestTransientLine(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.Local)
	retry := now.Add(4 * time.Second)
	tests := []struct {
		name   string
		expiry time.Time
		want   string
	}{
		{"valid for long", now.Add(55 * time.Minute),
			"the tokens could not be refreshed right now (HTTP 503); the current access token " +
				"is still valid until 2025-01-01 12:55:00 " + zone(now) + " (in 55m); try again " +
				"after 2025-01-01 12:00:04 " + zone(now) + " (in 4s)"},
		{"expired", now.Add(-5 * time.Minute),
			"the access token expired 5m ago and could not be refreshed right now (HTTP 503); " +
				"try again after 2025-01-01 12:00:04 " + zone(now) + " (in 4s)"},
		{"expires this instant", now,
			"the access token expired now and could not be refreshed right now (HTTP 503); " +
				"try again after"},
		{"unknown expiry", time.Time{},
			"the tokens could not be refreshed right now (HTTP 503); try again after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := transientLine(retry, "HTTP 503", tt.expiry, now)
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("got  %q\nwant %q...", got, tt.want)
			}
			if tt.expiry.After(now) && strings.Contains(got, "expired") {
				t.Errorf("%q says expired, but the token is valid until %v", got, tt.expiry)
			}
		})
	}
	if got := transientLine(time.Time{}, "", time.Time{}, now); got !=
		"the tokens could not be refreshed right now; try again later" {
		t.Errorf("without a retry time or detail: %q", got)
	}
}

func zone(t time.Time) string { return t.Format("MST") }

// TestTokenFailure: a Token or Refresh failure is explained with the
// snapshot's expiry, and a permission problem is not called temporary.
func TestTokenFailure(t *testing.T) {
	now := time.Now()
	valid := engine.Snapshot{Mode: states.ModeManaged, Expiry: now.Add(55 * time.Minute)}
	denied := &fs.PathError{Op: "open", Path: "/srv/codex/auth.json.lock", Err: fs.ErrPermission}
	tests := []struct {
		name     string
		err      error
		snap     engine.Snapshot
		wantCode int
		want     string
	}{
		{"transient, token still valid",
			&engine.TransientError{RetryAt: now.Add(4 * time.Second), Detail: "HTTP 503"}, valid,
			exitTransient, "the tokens could not be refreshed right now (HTTP 503); the current " +
				"access token is still valid until "},
		{"transient, token expired",
			&engine.TransientError{Detail: "HTTP 503"},
			engine.Snapshot{Mode: states.ModeManaged, Expiry: now.Add(-time.Hour)},
			exitTransient, "the access token expired 1h"},
		{"permission denied",
			fmt.Errorf("engine: cannot lock: %w", denied), valid,
			exitError, "permission denied in the Codex home /srv/codex (cannot lock: open " +
				"/srv/codex/auth.json.lock: permission denied); this will not pass by itself"},
		{"permission denied behind a transient failure",
			errors.Join(&engine.TransientError{Detail: "storage: cannot lock: permission denied",
				RetryAt: now.Add(4 * time.Second)}, denied), valid,
			exitError, "permission denied in the Codex home /srv/codex (storage: cannot lock: " +
				"permission denied); this will not pass by itself: fix the owner or the " +
				"permissions of /srv/codex"},
		{"read-only file system behind a transient failure",
			errors.Join(&engine.TransientError{Detail: "storage: cannot write in /srv/codex: " +
				"read-only file system", RetryAt: now.Add(4 * time.Second)},
				&fs.PathError{Op: "open", Path: "/srv/codex/.auth.json1", Err: syscall.EROFS}),
			valid, exitError, "the Codex home /srv/codex is on a read-only file system (storage: " +
				"cannot write in /srv/codex: read-only file system); this will not pass by " +
				"itself: credctl must be able to save refreshed tokens"},
		{"lock file that is not a file",
			fmt.Errorf("engine: %w", fmt.Errorf("%w: /srv/codex/auth.json.lock is a directory",
				storage.ErrBadLockFile)), valid,
			exitError, "the store's lock file in /srv/codex is not a plain file (storage: the " +
				"lock file is not a regular file: /srv/codex/auth.json.lock is a directory); this " +
				"will not pass by itself: remove /srv/codex/auth.json.lock; the next run creates it again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, line := describe(tokenFailure(tt.err, tt.snap, "/srv/codex"))
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if !strings.HasPrefix(line, tt.want) {
				t.Errorf("line %q\nwant it to start %q", line, tt.want)
			}
			if strings.Contains(line, "try again") && tt.wantCode == exitError {
				t.Errorf("line %q suggests trying again for a problem that stays", line)
			}
		})
	}
}

func TestSpan(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                               "0s",
		400 * time.Millisecond:          "0s",
		45 * time.Second:                "45s",
		55 * time.Minute:                "55m",
		time.Hour:                       "1h",
		time.Hour + 30*time.Minute:      "1h30m",
		56*time.Minute + 10*time.Second: "56m10s",
		8 * 24 * time.Hour:              "8d",
		51 * time.Hour:                  "2d3h",
		-90 * time.Second:               "-1m30s",
	} {
		if got := span(d); got != want {
			t.Errorf("span(%v) = %q, want %q", d, got, want)
		}
	}
}

// brokenStdout fails every write, as a full disk or a closed pipe does.
type brokenStdout struct{}

func (brokenStdout) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// TestRun_stdoutWriteFailureIsAFailure: a command whose output could not be
// written exits 1 and says so, rather than exit 0 with nothing delivered.
func TestRun_stdoutWriteFailureIsAFailure(t *testing.T) {
	srv := oauthtest.NewServer()
	t.Cleanup(srv.Close)
	home := t.TempDir()
	writeAuthJSON(t, home, srv.Issue(oauthtest.Account{Email: "dev@example.com", AccountID: "acct-1"}))
	for _, args := range [][]string{
		{"--home", home, "token"},
		{"--home", home, "status"},
		{"--home", home, "status", "--json"},
		{"statechart"},
	} {
		var stderr strings.Builder
		code := run(args, strings.NewReader(""), brokenStdout{}, &stderr,
			func(string) string { return "" })
		if code != exitError {
			t.Errorf("%v: exit %d, want %d", args, code, exitError)
		}
		want := "credctl: cannot write to standard output (" + syscall.ENOSPC.Error() + "); "
		if got := stderr.String(); !strings.HasPrefix(got, want) || strings.Count(got, "\n") != 1 {
			t.Errorf("%v: stderr %q, want one line starting %q", args, got, want)
		}
	}
}

// TestPrintable: what a terminal would act on is escaped, the rest kept.
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"dev@example.com":                 "dev@example.com",
		"évelyne@exemple.fr":              "évelyne@exemple.fr",
		"evil\x1b]0;TITLE\x07\nsecond":    `evil\x1b]0;TITLE\a\nsecond`,
		"pro\x1b[31mRED":                  `pro\x1b[31mRED`,
		"abc\u202edef":                    `abc\u202edef`,
		"line\u2028sep":                   `line\u2028sep`,
		"bad\xffbyte":                     `bad\ufffdbyte`,
		"tab\there, cr\rthere, del\x7fme": `tab\there, cr\rthere, del\x7fme`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStatus_escapesClaims: claims come from an id token, which anyone who
// can write auth.json controls. status and login show them escaped, never
// as escape sequences or extra lines.
func TestStatus_escapesClaims(t *testing.T) {
	srv := oauthtest.NewServer()
	t.Cleanup(srv.Close)
	set := srv.Issue(oauthtest.Account{Email: "evil\x1b]0;TITLE\x07\nsecond line",
		Plan: "pro\x1b[31mRED", AccountID: "acct\r-1"})
	home := t.TempDir()
	writeAuthJSON(t, home, set)

	var stdout, stderr strings.Builder
	if code := run([]string{"--home", home, "status"}, strings.NewReader(""), &stdout, &stderr,
		func(string) string { return "" }); code != exitOK {
		t.Fatalf("status: exit %d, stderr %q", code, stderr.String())
	}
	out := stdout.String()
	if strings.ContainsAny(out, "\x1b\x07\r") || strings.Contains(out, "\nsecond line") {
		t.Errorf("status printed a control character or an extra line:\n%q", out)
	}
	if !strings.Contains(out, `evil\x1b]0;TITLE\a\nsecond line`) {
		t.Errorf("status does not show the email escaped:\n%s", out)
	}
}
