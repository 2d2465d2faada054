package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
)

// Exit codes. They are part of the interface: scripts branch on them, so
// they never change meaning. The root command's help and the README list
// them too.
const (
	exitOK        = 0 // the command did what it was asked
	exitError     = 1 // usage, bad input, or any other error
	exitLoggedOut = 2 // no credential is stored: sign in
	exitSignIn    = 3 // the credential failed for good: sign in again
	exitTransient = 4 // no usable token right now; retry later
)

// exitCodesHelp is the table shown by "credctl --help".
const exitCodesHelp = `Exit codes:
  0  success
  1  usage error, bad input (a flag, stdin, a trace, an auth.json that
     cannot be read) or any other error
  2  not signed in: nothing is stored; run "credctl login"
  3  sign in again: the credential failed for good (refresh token
     expired, reused or revoked); the message says why
  4  temporary failure: the token could not be refreshed right now
     (network, server error, rate limit); the message says when to retry`

// cliError is an error with its exit code and a one-line message for
// people. Commands return it for failures they describe themselves.
type cliError struct {
	code int
	msg  string
	err  error // the cause, for errors.Is; never printed as is
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.err }

// badInput reports a usage error or bad input (exit code 1).
func badInput(format string, args ...any) error {
	return &cliError{code: exitError, msg: fmt.Sprintf(format, args...)}
}

// describe turns any error a command returned into an exit code and one
// line for stderr, without the "credctl: " prefix.
func describe(err error) (int, string) {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code, oneLine(ce.msg)
	}
	var perm *engine.PermanentError
	if errors.As(err, &perm) {
		return permanentLine(perm.Reason, perm.Detail)
	}
	var tr *engine.TransientError
	if errors.As(err, &tr) {
		return exitTransient, transientLine(tr.RetryAt, tr.Detail, time.Now())
	}
	switch {
	case errors.Is(err, engine.ErrLoggedOut):
		return exitLoggedOut, loggedOutLine
	case errors.Is(err, engine.ErrNotRefreshable):
		return exitError, "the credential is an API key, which is never refreshed; nothing to do"
	case errors.Is(err, context.DeadlineExceeded):
		return exitTransient, "gave up waiting (see --timeout); the token server did not answer " +
			"in time; try again later"
	case errors.Is(err, context.Canceled):
		return exitError, "interrupted"
	}
	return exitError, oneLine(strings.TrimPrefix(err.Error(), "engine: "))
}

const loggedOutLine = `not signed in: nothing is stored; sign in with "credctl login --api-key" ` +
	`or "credctl login --tokens" (or "codex login")`

// permanentLine says why a credential failed for good and what to do. An
// unreadable store is bad input (exit 1): a person must look at the file
// the detail names. Every other reason means signing in again (exit 3).
func permanentLine(r states.Reason, detail string) (int, string) {
	code := exitSignIn
	if r == states.ReasonUnreadableStore {
		code = exitError
	}
	msg := r.Describe()
	if step := r.NextStep(); step != "" {
		msg += "; " + step
	}
	if detail != "" {
		msg += " (" + strings.TrimPrefix(detail, "engine: ") + ")"
	}
	return code, oneLine(msg)
}

// transientLine says that no token is usable now and when to try again.
func transientLine(retryAt time.Time, detail string, now time.Time) string {
	msg := "the access token has expired and could not be refreshed right now"
	if detail != "" {
		msg += " (" + detail + ")"
	}
	if retryAt.IsZero() {
		msg += "; try again later"
	} else {
		msg += "; try again after " + clock(retryAt) + " (" + until(retryAt, now) + ")"
	}
	return oneLine(msg)
}

// oneLine keeps a message on one line, whatever an error chain held.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func writeLine(w io.Writer, s string) {
	fmt.Fprintln(w, s)
}
