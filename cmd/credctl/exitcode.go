package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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
     cannot be read), a problem that does not pass by itself (permissions,
     a read-only home, an OS keyring that cannot be reached), or any other
     error
  2  not signed in: nothing is stored; sign in with "codex login", or
     with "credctl login --api-key" or "credctl login --tokens"
  3  sign in again: the credential failed for good (refresh token
     expired, reused or revoked); the message says why
  4  temporary failure: the token could not be refreshed, or a login
     saved, right now (network, server error, rate limit, the store lock
     held by another process); the message says when to retry`

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
		// Without a snapshot the expiry is unknown; tokenFailure adds it.
		return exitTransient, transientLine(tr.RetryAt, tr.Detail, time.Time{}, time.Now())
	}
	switch {
	case errors.Is(err, engine.ErrLoggedOut):
		return exitLoggedOut, loggedOutLine
	case errors.Is(err, engine.ErrNotRefreshable):
		return exitError, "the credential is an API key, which is never refreshed; nothing to do"
	case errors.Is(err, context.DeadlineExceeded):
		// A session names what it waited for (see gaveUp); here that is
		// not known.
		return exitTransient, "gave up waiting (see --timeout); try again later"
	case errors.Is(err, context.Canceled):
		return exitError, "interrupted"
	}
	return exitError, oneLine(strings.TrimPrefix(err.Error(), "engine: "))
}

// signInHint says how to sign in. Codex users sign in with Codex, which
// stores what credctl reads; anyone can pipe a key or tokens to credctl.
// The exit code table (exitCodesHelp) and the README say the same.
const signInHint = `sign in with "codex login", or with "credctl login --api-key" or ` +
	`"credctl login --tokens"`

const loggedOutLine = "not signed in: nothing is stored; " + signInHint

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

// transientLine says that the tokens could not be refreshed for now, what
// that means for the access token in hand, and when to try again. expiry is
// the access token's (zero when unknown): a refresh can fail long before
// the token expires, and saying it has expired then would send people
// looking for a problem they do not have.
func transientLine(retryAt time.Time, detail string, expiry, now time.Time) string {
	msg := "the tokens could not be refreshed right now"
	if !expiry.IsZero() && !expiry.After(now) {
		msg = "the access token expired " + until(expiry, now) +
			" and could not be refreshed right now"
	}
	if detail != "" {
		msg += " (" + detail + ")"
	}
	if expiry.After(now) {
		msg += "; the current access token is still valid until " + clock(expiry) +
			" (" + until(expiry, now) + ")"
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

// printable escapes what a terminal would act on instead of showing:
// control characters (escape sequences, new lines, carriage returns) and
// invisible format characters such as bidirectional overrides. Claims in an
// id token, a file name, a provider's message: none of them may move the
// cursor or retitle the window of whoever reads credctl's output.
func printable(s string) string {
	if !strings.ContainsFunc(s, needsEscape) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if needsEscape(r) {
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func needsEscape(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) ||
		r == utf8.RuneError
}

// writeLine writes one line for people (to stderr, mostly), escaped with
// printable.
func writeLine(w io.Writer, s string) {
	fmt.Fprintln(w, printable(s))
}
