package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
)

// maxStdin bounds what login reads: a key is under a hundred bytes and
// three tokens a few kilobytes.
const maxStdin = 1 << 20

const loginLong = `Sign in with a credential read from stdin, and save it in the Codex format
where --home and --store say. It replaces whatever was stored.

  --api-key   stdin holds an API key (surrounding white space is ignored).
  --tokens    stdin holds a JSON object with the OAuth tokens of a login:
              {"id_token": "...", "access_token": "...", "refresh_token": "..."}
              (the "tokens" object of a Codex auth.json has this shape; other
              members such as account_id are ignored: the account comes from
              the id token). credctl refreshes these tokens itself.

The credential is never taken from the command line, where other users and
the shell history could see it. There is no browser sign-in here: use
"codex login" for that; credctl reads what it stores.`

const loginExample = `  credctl login --api-key < ~/secrets/openai-key.txt
  printenv OPENAI_API_KEY | credctl login --api-key
  credctl login --tokens < tokens.json   # tokens from your own OAuth sign-in flow

  # The tokens of a Codex login, into another home:
  jq .tokens ~/.codex/auth.json | credctl --home /srv/codex login --tokens`

func (a *app) loginCommand() *cobra.Command {
	var apiKey, tokens bool
	cmd := &cobra.Command{
		Use:     "login (--api-key | --tokens) < credential",
		Short:   "Sign in with an API key or OAuth tokens read from stdin",
		Long:    loginLong,
		Example: loginExample,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if apiKey == tokens {
				return badInput("say what stdin holds: --api-key or --tokens (one of them)")
			}
			a.promptIfTerminal(apiKey)
			input, err := readStdin(a.stdin)
			if err != nil {
				return err
			}

			// Check the input before opening the store, so that bad input
			// never reaches it.
			var key string
			var tok tokenInput
			if apiKey {
				if key, err = parseAPIKey(input); err != nil {
					return err
				}
			} else if tok, err = parseTokens(input); err != nil {
				return err
			}

			return a.withSession(cmd, a.writeLockWait(), func(ctx context.Context, s *session) error {
				var err error
				if apiKey {
					err = s.m.LoginAPIKey(ctx, key)
				} else {
					err = s.m.LoginTokens(ctx, tok.IDToken, tok.AccessToken, tok.RefreshToken)
				}
				if err != nil {
					return loginFailure(err, s.m.Snapshot(), s.home)
				}
				a.reportLogin(s.m.Snapshot())
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&apiKey, "api-key", false, "stdin holds an API key")
	cmd.Flags().BoolVar(&tokens, "tokens", false,
		`stdin holds {"id_token","access_token","refresh_token"} as JSON`)
	return cmd
}

// promptIfTerminal tells a person at a terminal what credctl waits for;
// without it, a login that reads stdin looks like it hangs.
func (a *app) promptIfTerminal(apiKey bool) {
	f, ok := a.stdin.(*os.File)
	if !ok {
		return
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return
	}
	what := "the API key"
	if !apiKey {
		what = "the tokens JSON"
	}
	writeLine(a.stderr, "credctl: reading "+what+" from stdin (it is not echoed back); "+
		"end with Ctrl-D")
}

func readStdin(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxStdin+1))
	if err != nil {
		return nil, badInput("cannot read stdin: %v", err)
	}
	if len(b) > maxStdin {
		return nil, badInput("stdin holds more than %d bytes; that is not a credential", maxStdin)
	}
	return b, nil
}

// parseAPIKey checks what stdin held. The key is sent in an HTTP header,
// whose value may hold visible ASCII only, so anything else is refused here
// rather than by every request later. Error messages never quote the key.
func parseAPIKey(input []byte) (string, error) {
	key := strings.TrimSpace(string(input))
	switch {
	case key == "":
		return "", badInput("the API key read from stdin is empty")
	case key[0] == '{' || key[0] == '[':
		return "", badInput("stdin holds JSON, not an API key; for OAuth tokens use " +
			"\"credctl login --tokens\", for a key pipe just the key")
	case len(key) > 1 && key[0] == '"' && key[len(key)-1] == '"':
		return "", badInput("the API key read from stdin is in double quotes, as JSON " +
			"writes it; pipe just the key (jq -r prints it without them)")
	case strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return "", badInput("the API key read from stdin contains white space or control " +
			"characters; pipe just the key")
	}
	if i := strings.IndexFunc(key, func(r rune) bool { return r > '~' }); i >= 0 {
		return "", badInput("the API key read from stdin contains a character that is not "+
			"ASCII (at byte %d); an API key is sent in an HTTP header, which takes printable "+
			"ASCII only: check for a typographic quote or a look-alike letter", i+1)
	}
	return key, nil
}

// tokenInput is what --tokens reads.
type tokenInput struct {
	IDToken, AccessToken, RefreshToken string
}

// parseTokens reads the tokens JSON and names every field that is missing,
// empty or of the wrong type. Error messages never quote the input.
func parseTokens(input []byte) (tokenInput, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(input, &obj); err != nil || obj == nil {
		var syn *json.SyntaxError
		switch {
		case errors.As(err, &syn):
			return tokenInput{}, badInput("the tokens on stdin are not valid JSON (syntax error "+
				"at byte %d); want {\"id_token\",\"access_token\",\"refresh_token\"}", syn.Offset)
		case len(strings.TrimSpace(string(input))) == 0:
			return tokenInput{}, badInput("stdin is empty; want the tokens as " +
				"{\"id_token\",\"access_token\",\"refresh_token\"}")
		}
		return tokenInput{}, badInput("the tokens on stdin are not a JSON object; want " +
			"{\"id_token\",\"access_token\",\"refresh_token\"}")
	}

	if name, twice := repeatedMember(input); twice {
		return tokenInput{}, badInput("the tokens on stdin give %s twice; which one to keep "+
			"would be a guess", quotedName(name))
	}

	if looksLikeAuthJSON(obj) {
		return tokenInput{}, badInput("stdin holds a whole auth.json, not the tokens; pass its " +
			"\"tokens\" object instead, e.g. jq .tokens ~/.codex/auth.json | credctl login --tokens")
	}

	var out tokenInput
	var problems []string
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"id_token", &out.IDToken},
		{"access_token", &out.AccessToken},
		{"refresh_token", &out.RefreshToken},
	} {
		raw, ok := obj[f.name]
		if !ok || string(raw) == "null" {
			problems = append(problems, f.name+" is missing")
			continue
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			problems = append(problems, f.name+" is not a string")
			continue
		}
		*f.dst = strings.TrimSpace(*f.dst)
		if *f.dst == "" {
			problems = append(problems, f.name+" is empty")
		}
	}
	if len(problems) > 0 {
		return tokenInput{}, badInput("the tokens on stdin are incomplete: %s",
			strings.Join(problems, ", "))
	}
	// TODO: a provider that issues no id token (OAuth 2.0 without OpenID
	// Connect) cannot sign in here: the record format is Codex's, whose
	// loader requires a parseable id token, and status shows its claims.
	// Such logins would need a record shape of their own.
	if _, err := oauth.ParseIDToken(out.IDToken); err != nil {
		return tokenInput{}, badInput("id_token on stdin is not a usable JWT: %s",
			strings.TrimPrefix(err.Error(), "oauth: "))
	}
	return out, nil
}

// looksLikeAuthJSON reports whether obj is a Codex auth.json rather than
// its "tokens" member: it holds a "tokens" object and none of the tokens
// themselves.
func looksLikeAuthJSON(obj map[string]json.RawMessage) bool {
	for _, name := range []string{"id_token", "access_token", "refresh_token"} {
		if _, ok := obj[name]; ok {
			return false
		}
	}
	var tokens map[string]json.RawMessage
	return json.Unmarshal(obj["tokens"], &tokens) == nil && tokens != nil
}

// loginFailure explains a login the engine refused or could not save.
func loginFailure(err error, snap engine.Snapshot, home string) error {
	if errors.Is(err, engine.ErrEmptyCredential) {
		return &cliError{code: exitError, err: err,
			msg: strings.TrimPrefix(err.Error(), "engine: ")}
	}
	if ef := environmentFailure(err, home); ef != nil {
		return ef
	}
	if snap.Unsaved && snap.LastError != "" && errors.Is(err, states.ErrLockTimeout) {
		// Another process held the lock, as it does for a whole refresh:
		// that passes, so the exit code is the temporary one.
		return &cliError{code: exitTransient, err: err, msg: "login failed: " + snap.LastError +
			"; what " + storeLine(snap.Store) + " held before, if anything, is unchanged; " +
			"try again in a moment"}
	}
	if snap.Unsaved && snap.LastError != "" && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, context.Canceled) {
		// The engine keeps the credential for this process, which ends
		// now: the login did not take.
		return &cliError{code: exitError, err: err, msg: "login failed: " + snap.LastError +
			"; what " + storeLine(snap.Store) + " held before, if anything, is unchanged"}
	}
	return fmt.Errorf("login failed: %w", err)
}

// reportLogin says who is signed in, until when, and where it was saved.
func (a *app) reportLogin(snap engine.Snapshot) {
	who := ""
	if snap.Email != "" {
		who = " for " + snap.Email
		if p := snap.Plan.Display(); p != "" {
			who += " (" + p + ")"
		}
	}
	a.out("signed in with %s%s; state %s", snap.Mode.Label(), printable(who), snap.State)
	if now := time.Now(); snap.Expiry.After(now) {
		a.out("access token valid until %s (%s)", clock(snap.Expiry), until(snap.Expiry, now))
	} else if !snap.Expiry.IsZero() {
		a.out(`access token expired at %s (%s); "credctl token" refreshes it`, clock(snap.Expiry),
			until(snap.Expiry, now))
	}
	a.out("saved to %s", storeLine(snap.Store))
	if snap.Store.InsecureFallback {
		a.out("warning: the OS keyring is not used; the credential is in a plaintext file")
	}
	if snap.Store.Kind == "ephemeral" {
		a.out("note: an ephemeral store lives in this process's memory; the credential is " +
			"gone once credctl exits")
	}
}

// storeLine names a store for people: its kind and where it is. The
// ephemeral store's location is the key of an entry in this process's
// memory, which means nothing to a person; it is described instead.
func storeLine(info states.StoreInfo) string {
	switch {
	case info.Kind == storage.ModeEphemeral.String():
		return ephemeralName
	case info.Location == "":
		return info.Kind
	}
	return info.Kind + " " + info.Location
}

// ephemeralName is what credctl calls the store of --store ephemeral.
const ephemeralName = "the ephemeral store (this process's memory)"
