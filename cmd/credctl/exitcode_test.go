package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
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
			"the access token has expired and could not be refreshed right now (HTTP 503); " +
				"try again later"},
		{"timeout", fmt.Errorf("x: %w", context.DeadlineExceeded), exitTransient, "gave up waiting"},
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

func TestTransientLineSaysWhen(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	got := transientLine(now.Add(90*time.Second), "", now)
	if !strings.HasSuffix(got, "(in 1m30s)") {
		t.Errorf("got %q, want it to end with the wait", got)
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
