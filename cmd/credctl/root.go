package main

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth"
)

// app holds what every command needs: the process's streams and
// environment, and the global flags once parsed.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	flags          globalFlags
}

const rootLong = `credctl hands out a working bearer token for a Codex (or other OAuth)
login, refreshing it when needed, and tells you clearly when you must sign
in again.

It reads and writes the credential the OpenAI Codex CLI keeps (auth.json in
the Codex home, or the OS keyring), so credctl and Codex share one login.
Every change to the credential is a transition of an explicit state machine;
"credctl statechart" draws it, and "credctl demo" walks through it on a
loopback token server without touching your login.

` + exitCodesHelp

const rootExample = `  # A tour of a credential's whole life; needs no login:
  credctl demo

  # Use the Codex login in ~/.codex:
  credctl status
  curl -H "Authorization: Bearer $(credctl token)" https://api.example.com/

  # Another Codex home, kept in the OS keyring:
  credctl --home /srv/codex --store keyring status`

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:     "credctl",
		Short:   "Give me a working token for my Codex or OAuth login",
		Long:    rootLong,
		Example: rootExample,
		// Runtime errors are printed by run, as one line; a usage dump
		// after "the refresh token was revoked" would only bury it.
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noUnknownCommand,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.checkFlags(cmd)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(flagError)

	f := root.PersistentFlags()
	f.StringVar(&a.flags.home, "home", "",
		"the Codex home holding the credential (default $CODEX_HOME, else ~/.codex)")
	f.StringVar(&a.flags.store, "store", "file",
		"where the credential is kept: file (auth.json), keyring, auto (keyring, else file) "+
			"or ephemeral (this process's memory)")
	f.StringVar(&a.flags.profile, "profile", profileCodex,
		"token endpoint protocol: codex (OpenAI's) or rfc6749 (a standard OAuth 2.0 refresh, for a login that includes an OpenID Connect id token)")
	f.StringVar(&a.flags.tokenURL, "token-url", "",
		"token endpoint URL (https, or http on loopback); for codex the default is OpenAI's, "+
			"or $CODEX_REFRESH_TOKEN_URL_OVERRIDE when set")
	f.StringVar(&a.flags.clientID, "client-id", "",
		"OAuth client id (required with --profile rfc6749; codex has its own)")
	f.StringVar(&a.flags.clientSecretEnv, "client-secret-env", "",
		"name of an environment variable holding the OAuth client secret, if the client has one")
	f.BoolVar(&a.flags.useEnvKey, "use-env-key", false,
		"let $CODEX_API_KEY, when set, beat the stored credential (off by default; it is never saved)")
	f.BoolVarP(&a.flags.verbose, "verbose", "v", false, "debug logs on stderr (never secrets)")
	f.DurationVar(&a.flags.timeout, "timeout", time.Minute, timeoutUsage)

	root.AddCommand(
		a.tokenCommand(),
		a.statusCommand(),
		a.loginCommand(),
		a.logoutCommand(),
		a.refreshCommand(),
		a.statechartCommand(),
		a.replayCommand(),
		a.demoCommand(),
	)
	return root
}

// timeoutUsage documents --timeout. The limits it names are not credctl's
// to lift: the engine bounds each request, the wait for the lock and a whole
// refresh whatever the caller's deadline. Nor is the wait past the deadline
// for a redemption already sent: the engine lets it finish when credctl
// closes it, since its answer holds the only live refresh token.
var timeoutUsage = fmt.Sprintf("how long token, refresh, login and logout wait for the store "+
	"lock and the token endpoint before giving up (0: no limit of credctl's own); built-in "+
	"limits apply regardless: %s per request to the token endpoint, %s for the store lock, "+
	"%s per refresh; a refresh token already sent to the token endpoint is waited for past "+
	"--timeout (up to the per-request limit), so that the new tokens are saved, not lost",
	span(oauth.DefaultTimeout), span(effects.DefaultLockTimeout),
	span(engine.DefaultRefreshTimeout))

// checkFlags refuses global flag values that parse but make no sense.
func (a *app) checkFlags(cmd *cobra.Command) error {
	if a.flags.timeout < 0 {
		return badInput("--timeout must not be negative (0: no limit of credctl's own); "+
			"see \"%s --help\"", cmd.CommandPath())
	}
	// An empty value would mean the profile's default endpoint, which for
	// the Codex profile is OpenAI's: not what someone who typed the flag
	// (with a variable that turned out empty, say) meant.
	for _, name := range []string{"token-url", "client-id"} {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed && f.Value.String() == "" {
			return badInput("--%s is empty; leave it out for the default, or give a value", name)
		}
	}
	return nil
}

// plainWord matches what may be echoed from a mistyped command name. Any
// other argument is not repeated: it may be a key pasted in the wrong
// place.
var plainWord = regexp.MustCompile(`^[a-z][a-z0-9-]{0,24}$`)

func noUnknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if plainWord.MatchString(args[0]) {
		return badInput("unknown command %q; see \"credctl --help\"", args[0])
	}
	return badInput("unknown command (not repeated here, in case it was a secret); " +
		"see \"credctl --help\"")
}

// noArgs refuses positional arguments without repeating them: on a
// credential tool, a stray argument is often a key pasted in the wrong
// place.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return badInput("%s takes no arguments (not repeated here, in case one was a secret); "+
			"see \"%s --help\"", cmd.CommandPath(), cmd.CommandPath())
	}
	return nil
}

// flagError reports a bad flag in one line. The value given to a boolean
// flag is not repeated, for the same reason as noArgs.
func flagError(cmd *cobra.Command, err error) error {
	var inv *pflag.InvalidValueError
	if errors.As(err, &inv) && inv.GetFlag() != nil {
		name := inv.GetFlag().Name
		if inv.GetFlag().Value.Type() == "bool" {
			return badInput("--%s takes no value; see \"%s --help\"", name, cmd.CommandPath())
		}
		return badInput("invalid value %q for --%s; see \"%s --help\"", inv.GetValue(), name,
			cmd.CommandPath())
	}
	return badInput("%v; see \"%s --help\"", err, cmd.CommandPath())
}

// out writes a line to stdout.
func (a *app) out(format string, args ...any) {
	fmt.Fprintf(a.stdout, format+"\n", args...)
}
