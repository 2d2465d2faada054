package main

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
)

const tokenLong = `Print the bearer token to use now, and nothing else, on stdout.

Tokens that are fresh are printed at once. Tokens that are near their expiry
(stale) are refreshed first at the token endpoint, and the new ones saved
where the old ones were, in the Codex format. An API key is printed as is.

If a refresh fails for now, or does not finish within --timeout, but the
current access token has not expired yet, it is still printed (exit 0) with
a warning on stderr. On failure stdout stays empty and one line on stderr
says why and what to do; the exit code says which kind of failure it was.

A refresh token the provider refuses (as already used, say) ends the login,
even while the access token has minutes left (exit 3), unless another
program that shares the login without taking credctl's lock, such as the
Codex CLI, spent it and saved new tokens. So after a refusal credctl
watches the store for up to two seconds, and if it comes to hold other
tokens, prints a token from those.

Each run starts from what is stored and remembers nothing of earlier runs:
after exit 3 another run tries the same refresh token again (and is refused
again), and after exit 4 it does not wait for the retry time it named. Stop
on 3 and wait on 4 in the script.

` + exitCodesHelp

const tokenExample = `  curl -H "Authorization: Bearer $(credctl token)" https://api.openai.com/v1/models

  # A token for another OAuth provider's login, stored in the same format:
  credctl --profile rfc6749 --token-url https://idp.example.com/oauth/token \
          --client-id my-app --home ~/.config/my-app token

  # Branch on the reason in a script:
  credctl token >/dev/null; case $? in 2|3) echo "please sign in";; 4) echo "retry later";; esac`

func (a *app) tokenCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "token",
		Short:   "Print a working bearer token, refreshing it first if needed",
		Long:    tokenLong,
		Example: tokenExample,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var opened *session
			err := a.withSession(cmd, 0, func(ctx context.Context, s *session) error {
				opened = s
				return a.token(ctx, s)
			})
			if opened != nil && a.printStoredAfterTimeout(opened, err) {
				return nil
			}
			return err
		},
	}
}

// token prints the bearer token, refreshing it first if the engine says so.
func (a *app) token(ctx context.Context, s *session) error {
	// TODO: a permanent failure and a backoff last only as long as
	// this process. The next run loads the same dead refresh token
	// and redeems it again (to the same refusal), and a script that
	// retries at once does not wait out the backoff. Remembering
	// both next to the store needs a way to start the engine from a
	// remembered outcome.
	tok, err := s.m.Token(ctx)
	if err != nil {
		var adopted bool
		if adopted, err = s.adoptedAfterRefusal(ctx, err); adopted {
			tok, err = s.m.Token(ctx)
		}
	}
	if err != nil {
		return tokenFailure(err, s.m.Snapshot(), s.home)
	}
	// The one place credctl prints a secret: this is what the
	// command is for.
	a.out("%s", tok)

	switch snap := s.m.Snapshot(); {
	case snap.Unsaved:
		writeLine(a.stderr, "credctl: warning: the tokens were refreshed, but the new tokens could not "+
			"be saved ("+snap.LastError+"); the refresh token in the store has been used, so the "+
			`next run may have to sign in again; "credctl status" shows what is stored now`)
	case snap.State == states.Stale && snap.LastError != "":
		writeLine(a.stderr, "credctl: warning: "+staleWarning(snap, time.Now()))
	}
	return nil
}

// adoptedAfterRefusal handles a provider refusing the refresh token because
// another program spent it first. credfsm processes take the store's lock
// before redeeming, so they never race each other; the Codex CLI takes no
// lock, and when it refreshes while credctl's redemption is on its way, the
// provider refuses credctl's (now used) token while Codex has the new
// tokens, which it saves a moment later, not always in one write.
//
// So after a refusal credctl reads the store again, a few times over a
// short while (refusalRecheck): as soon as it holds another credential,
// that one is taken and adoptedAfterRefusal returns true. Otherwise it
// returns false and the error to report, which is the failure as the last
// read left it (a store that is now unreadable says so, not "already
// used").
func (s *session) adoptedAfterRefusal(ctx context.Context, err error) (bool, error) {
	var perr *engine.PermanentError
	if !errors.As(err, &perr) {
		return false, err
	}
	switch perr.Reason {
	case states.ReasonExpired, states.ReasonReused, states.ReasonRevoked,
		states.ReasonInvalidGrant, states.ReasonUnknown:
	default:
		return false, err // not a refused refresh token: nothing another program could fix
	}
	// The store is looked at before each reload, and reloaded only when it
	// can be read: a reload of an unreadable store would replace the
	// refused credential the manager remembers with that failure, and the
	// same refused tokens, written back a moment later (a writer that
	// truncates and rewrites), would then look new and be redeemed again.
	deadline := time.Now().Add(refusalRecheck)
	unreadable := false
	for {
		_, _, lerr := s.store.Load(ctx)
		unreadable = lerr != nil
		if !unreadable && s.m.Reload(ctx) == nil && s.m.Snapshot().State != states.FailedPermanent {
			return true, nil
		}
		if !time.Now().Before(deadline) || sleepCtx(ctx, refusalRecheckEvery) != nil {
			break
		}
	}
	if unreadable {
		_ = s.m.Reload(ctx) // so that the failure reported is the store's
	}
	if _, now := s.m.Token(ctx); now != nil {
		return false, now
	}
	return false, err
}

// refusalRecheck is how long adoptedAfterRefusal watches the store for the
// tokens of the program that spent the refresh token, and
// refusalRecheckEvery how often it reads it meanwhile.
const (
	refusalRecheck      = 2 * time.Second
	refusalRecheckEvery = 100 * time.Millisecond
)

// sleepCtx waits for d, or until ctx is done, whose error it then returns.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// printStoredAfterTimeout handles a --timeout that ran out while the
// manager waited (for the store lock, the token endpoint, a save): the
// tokens it was refreshing may still be good for a while, and a script is
// better served by them than by nothing. If err is such a timeout and the
// store holds an access token whose expiry is known and still ahead, it is
// printed, with a warning, and printStoredAfterTimeout reports true. The
// manager is closed by then, so a refresh that finished late has saved its
// tokens, and those are the ones printed.
func (a *app) printStoredAfterTimeout(s *session, err error) bool {
	var ce *cliError
	if !errors.As(err, &ce) || ce.code != exitTransient || !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), storedReadTimeout)
	defer cancel()
	rec, _, lerr := s.store.Load(ctx)
	now := time.Now()
	if lerr != nil || rec.Tokens.AccessToken.IsZero() || !rec.AccessExpiry.After(now) {
		return false
	}
	a.out("%s", rec.Tokens.AccessToken.Reveal())
	valid := "valid until " + clock(rec.AccessExpiry) + " (" + until(rec.AccessExpiry, now) + ")"
	if _, late := refreshedLate(s.opened, s.m.Snapshot(), s.work.sent()); late {
		writeLine(a.stderr, "credctl: warning: the refresh finished after --timeout ran out "+
			"and its tokens were saved; printed the new access token, "+valid)
		return true
	}
	writeLine(a.stderr, "credctl: warning: "+ce.msg+"; the access token printed is the "+
		"stored one, still "+valid)
	return true
}

// storedReadTimeout bounds the read of the store after --timeout ran out.
const storedReadTimeout = 5 * time.Second

// tokenFailure explains a failed Token or Refresh call, adding what the
// snapshot knows that the error does not.
func tokenFailure(err error, snap engine.Snapshot, home string) error {
	if errors.Is(err, engine.ErrLoggedOut) {
		return &cliError{code: exitLoggedOut, err: err, msg: loggedOutIn(snap.Store)}
	}
	if ef := environmentFailure(err, home); ef != nil {
		return ef
	}
	var tr *engine.TransientError
	if !errors.As(err, &tr) {
		return err
	}
	if snap.Mode == states.ModeExternal {
		return &cliError{code: exitTransient, err: err, msg: "the access token has expired, and " +
			"these tokens are refreshed by the application that stored them (auth_mode " +
			"chatgptAuthTokens), not by credctl; let that application refresh them, or " +
			signInHint}
	}
	return &cliError{code: exitTransient, err: err,
		msg: transientLine(tr.RetryAt, tr.Detail, snap.Expiry, time.Now())}
}

// environmentFailure explains a failure to lock, read or write the store
// for a reason outside the credential, or returns nil if err is not one:
// this user's permissions, a read-only file system, a lock file that is not
// a plain file, an OS keyring that cannot be reached. A refresh that failed
// so would otherwise count as temporary (exit 4), and a script would retry
// it for ever; none of these passes by itself.
func environmentFailure(err error, home string) error {
	what, step := environmentProblem(err, home)
	if step == "" {
		return nil
	}
	return &cliError{code: exitError, err: err, msg: what + " (" + errorDetail(err) +
		"); this will not pass by itself: " + step}
}

// environmentStep is the next step when the store could not be used for a
// reason outside the credential (see environmentFailure), or "" when err is
// not one. The credential itself may be fine, so the step must not be the
// usual "remove it and sign in again".
func environmentStep(err error, home string) string {
	_, step := environmentProblem(err, home)
	return step
}

// environmentProblem names the problem outside the credential behind err,
// and the step that fixes it; both are "" when err is not one.
func environmentProblem(err error, home string) (what, step string) {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return "permission denied in the Codex home " + home,
			"fix the owner or the permissions of " + home + " and the files in it, or " +
				"run credctl as the user who owns them"
	case errors.Is(err, syscall.EROFS):
		return "the Codex home " + home + " is on a read-only file system",
			"credctl must be able to save refreshed tokens; make " + home + " writable, " +
				"or point --home at a writable copy"
	case errors.Is(err, storage.ErrBadLockFile):
		return "the store's lock file in " + home + " is not a plain file",
			"remove " + filepath.Join(home, storage.LockFileName) + "; the next run " +
				"creates it again"
	case errors.Is(err, storage.ErrKeyringUnavailable), errors.Is(err, storage.ErrKeyringTimeout):
		return "cannot read the credential",
			"make the OS keyring reachable (start or unlock its secret service), or " +
				"choose the file with --store file; the stored credential may well be fine"
	}
	return "", ""
}

// errorDetail is what an engine error says about its cause, without the
// advice its own text adds.
func errorDetail(err error) string {
	var tr *engine.TransientError
	if errors.As(err, &tr) && tr.Detail != "" {
		return tr.Detail
	}
	var pe *engine.PermanentError
	if errors.As(err, &pe) && pe.Detail != "" {
		return pe.Detail
	}
	return strings.TrimPrefix(err.Error(), "engine: ")
}

// staleWarning says that the token printed is the old one because a refresh
// failed, and until when it stays good.
func staleWarning(snap engine.Snapshot, now time.Time) string {
	msg := "the tokens could not be refreshed (" + snap.LastError + ")"
	if !snap.Expiry.IsZero() {
		msg += "; the current access token is still valid until " + clock(snap.Expiry) +
			" (" + until(snap.Expiry, now) + ")"
	}
	if !snap.RetryAt.IsZero() {
		msg += "; next attempt after " + clock(snap.RetryAt)
	}
	return oneLine(msg)
}

// loggedOutIn is the logged-out message naming the store that was read.
func loggedOutIn(info states.StoreInfo) string {
	return "not signed in: nothing is stored in " + storeLine(info) + "; " + signInHint
}
