package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
)

// globalFlags are the flags every command shares.
type globalFlags struct {
	home            string
	store           string
	profile         string
	tokenURL        string
	clientID        string
	clientSecretEnv string
	useEnvKey       bool
	verbose         bool
	timeout         time.Duration
}

// Profile names accepted by --profile.
const (
	profileCodex   = "codex"
	profileRFC6749 = "rfc6749"
)

// resolveHome returns the Codex home to use and where the choice came from.
//
// A home that was asked for — with --home or CODEX_HOME — must exist:
// silently reporting "not signed in" for a mistyped path would send a
// person looking in the wrong place (Codex refuses a missing CODEX_HOME for
// the same reason). The default, ~/.codex, may be missing: that is what a
// machine that never signed in looks like, and a login creates it.
func (a *app) resolveHome() (home, source string, err error) {
	switch {
	case a.flags.home != "":
		home, source = a.flags.home, "--home"
	case a.getenv("CODEX_HOME") != "":
		home, source = a.getenv("CODEX_HOME"), "CODEX_HOME"
	default:
		h, err := storage.DefaultHome()
		if err != nil {
			return "", "", badInput("cannot find the Codex home (%v); set --home or CODEX_HOME", err)
		}
		return h, "default", nil
	}
	info, err := os.Stat(home)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", "", badInput("the Codex home %s (from %s) does not exist; create it or fix the path",
			home, source)
	case err != nil:
		return "", "", badInput("the Codex home %s (from %s) cannot be used: %v", home, source,
			unwrapPathError(err))
	case !info.IsDir():
		return "", "", badInput("the Codex home %s (from %s) is not a directory", home, source)
	}
	return home, source, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// profile builds the token endpoint description from the flags.
func (a *app) profile() (*oauth.Profile, error) {
	var p oauth.Profile
	switch a.flags.profile {
	case profileCodex:
		p = oauth.CodexProfile()
		if a.flags.tokenURL != "" {
			// An explicit flag beats the environment override.
			p.TokenURL, p.URLEnv = a.flags.tokenURL, ""
		}
		if a.flags.clientID != "" {
			p.ClientID = a.flags.clientID
		}
	case profileRFC6749:
		switch {
		case a.flags.tokenURL == "" && a.flags.clientID == "":
			return nil, badInput("--profile rfc6749 needs --token-url and --client-id")
		case a.flags.tokenURL == "":
			return nil, badInput("--profile rfc6749 needs --token-url too")
		case a.flags.clientID == "":
			return nil, badInput("--profile rfc6749 needs --client-id too")
		}
		p = oauth.RFC6749Profile(a.flags.tokenURL, a.flags.clientID, states.Secret{})
	default:
		return nil, badInput("unknown --profile %q (want %s or %s)", a.flags.profile,
			profileCodex, profileRFC6749)
	}

	if name := a.flags.clientSecretEnv; name != "" {
		secret := a.getenv(name)
		if secret == "" {
			return nil, badInput("the environment variable %s (named by --client-secret-env) "+
				"is not set or empty", name)
		}
		p.ClientSecret = states.NewSecret(secret)
	}
	if a.flags.tokenURL != "" {
		if err := oauth.CheckTokenURL(a.flags.tokenURL); err != nil {
			return nil, badInput("--token-url: %s", strings.TrimPrefix(err.Error(), "oauth: "))
		}
	}
	return &p, nil
}

// logger returns the debug logger for -v, or nil (no logging).
func (a *app) logger() *slog.Logger {
	if !a.flags.verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// session is an open Manager together with what a command reports about
// where it came from.
type session struct {
	m          *engine.Manager
	store      *storage.Store // the manager's store, for reading it behind the manager's back
	home       string
	homeSource string
	mode       storage.Mode // the --store in use
	work       *workLog     // what the manager was busy with, step by step

	// opened is the snapshot taken once the credential was loaded, before
	// the command's own work: what gaveUp compares with to tell whether a
	// refresh finished after the command stopped waiting for it.
	opened engine.Snapshot
}

// open builds the Manager every command but demo and replay uses, and
// loads the credential. Loading never writes: a Manager that only loads
// and reports leaves every store as it was.
//
// lockWait bounds the wait for the store lock; 0 leaves the engine's
// default.
func (a *app) open(ctx context.Context, lockWait time.Duration) (*session, error) {
	home, source, err := a.resolveHome()
	if err != nil {
		return nil, err
	}
	mode, err := storage.ParseMode(a.flags.store)
	if err != nil {
		return nil, badInput("unknown --store %q (want file, keyring, auto or ephemeral)", a.flags.store)
	}
	profile, err := a.profile()
	if err != nil {
		return nil, err
	}
	logger := a.logger()
	store, err := storage.Open(storage.Options{Home: home, Mode: mode, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("cannot start: %w", err)
	}
	work := &workLog{}
	m, err := engine.New(ctx, engine.Config{
		Store:          store,
		Profile:        profile,
		Logger:         logger,
		HonorEnvAPIKey: a.flags.useEnvKey,
		Getenv:         a.getenv,
		LockTimeout:    lockWait,
		OnTransition:   work.record,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot start: %w", err)
	}
	return &session{m: m, store: store, home: home, homeSource: source, mode: mode, work: work,
		opened: m.Snapshot()}, nil
}

// withSession runs fn with a manager for the configured home, under the
// --timeout context, and closes the manager when fn returns. fn may close it
// earlier itself (Close is idempotent), to have every transition delivered
// before it reports. An error that is the --timeout running out is
// explained by what the manager was busy with at the time.
func (a *app) withSession(cmd *cobra.Command, lockWait time.Duration,
	fn func(ctx context.Context, s *session) error) error {
	ctx, cancel := a.withTimeout(cmd.Context())
	defer cancel()
	s, err := a.open(ctx, lockWait)
	if err != nil {
		return err
	}
	defer s.m.Close()
	return s.gaveUp(ctx, fn(ctx, s))
}

// withTimeout bounds a command that may wait for the store lock or talk to
// the token endpoint.
func (a *app) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if a.flags.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, a.flags.timeout)
}

// writeLockWait is how long login and logout wait for the store lock, which
// another process may hold for a whole refresh: half of --timeout, at most
// the engine's default. Both go on without waiting for the deadline: logout
// clears the stores without the lock, and a login reports its save as
// failed. Waiting for the lock until the deadline would leave them no time
// for that; the save or the clearing would then be abandoned, or finish
// only after credctl had reported something else.
func (a *app) writeLockWait() time.Duration {
	half := a.flags.timeout / 2
	if half <= 0 || half >= effects.DefaultLockTimeout {
		return 0
	}
	return half
}
