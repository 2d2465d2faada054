package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/credfsm/credfsm/effects/effectstest"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
)

const demoLong = `Walk through the whole life of one Codex login — sign-in, fresh tokens,
expiry, a refresh with rotation, a 401 and its recovery, a token server that
fails for a moment, a copied auth.json that kills the login, and sign-out —
printing every transition of the state machine as it happens.

It needs no login and no network: a token server runs on 127.0.0.1, the
credential lives in a temporary Codex home that is removed afterwards, and
time is a manual clock, so "an hour passes" takes no time. --home, --store
and the endpoint flags are ignored. Tokens are shown as short SHA-256
fingerprints, never in full.`

func (a *app) demoCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Tour a credential's whole life on a loopback token server (needs no login)",
		Long:  demoLong,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := runDemo(cmd.Context(), a.stdout, a.logger()); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			return nil
		},
	}
}

// demoStart is the demo clock's first reading; only offsets from it are
// printed.
var demoStart = time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)

// demoWait bounds the wait for a transition the story expects. Every step
// is on loopback with a manual clock, so it comes in milliseconds; reaching
// this means the engine behaves differently from the story.
const demoWait = 5 * time.Second

// demo holds the pieces of the story.
type demo struct {
	w     io.Writer
	clock *effectstest.Clock
	srv   *oauthtest.Server
	api   *httptest.Server
	m     *engine.Manager
	home  string

	seen chan engine.Transition // delivered by Subscribe, printed in order

	rejectNext atomic.Bool // the API answers the next request with 401
}

// runDemo tells the story on w. Everything it creates it removes.
func runDemo(ctx context.Context, w io.Writer, logger *slog.Logger) error {
	home, err := os.MkdirTemp("", "credctl-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)

	d := &demo{w: w, home: home, clock: effectstest.NewClock(demoStart),
		seen: make(chan engine.Transition, 1024)}
	d.srv = oauthtest.NewServer(oauthtest.WithClock(d.clock.Now))
	defer d.srv.Close()
	d.api = httptest.NewServer(http.HandlerFunc(d.serveAPI))
	defer d.api.Close()

	profile := d.srv.CodexProfile()
	d.m, err = engine.New(ctx, engine.Config{
		Home:       home,
		StoreMode:  storage.ModeFile,
		Profile:    &profile,
		HTTPClient: d.srv.HTTPClient(),
		Clock:      d.clock,
		Logger:     logger,
		Getenv:     func(string) string { return "" }, // this machine's settings play no part
	})
	if err != nil {
		return err
	}
	defer d.m.Close()
	d.m.Subscribe(func(t engine.Transition) { d.seen <- t })

	d.say(`credctl demo: the life of one Codex login, as credfsm's state machine sees it.

A token server runs on 127.0.0.1 and the login lives in a temporary Codex
home, removed at the end: your own login is never touched. Time is a manual
clock, so an hour passes at once. Tokens show as short SHA-256 fingerprints.

Each transition prints as:  time  event  from -> to  [rule]  then commands
(time is the demo clock's, from the start of the story).`)

	for _, act := range []func(context.Context) error{
		d.actStart, d.actLogin, d.actUse, d.actExpiry, d.actRefresh, d.act401,
		d.actTransient, d.actReuse, d.actLogout,
	} {
		if err := act(ctx); err != nil {
			return err
		}
	}

	d.say(`
The end. On your own machine:
  credctl status        what state your Codex login is in
  credctl token         a working bearer token, refreshed if needed
  credctl statechart    every state and rule you just saw`)
	return nil
}

func (d *demo) actStart(ctx context.Context) error {
	d.act(1, "A machine with nothing stored",
		`credfsm reads the store (auth.json in the Codex home) and finds nothing.
A caller that asks for a token is told to sign in ("credctl token" exits 2).`)
	if err := d.m.Reload(ctx); err != nil {
		return err
	}
	if err := d.until("load_nothing"); err != nil {
		return err
	}
	_, err := d.m.Token(ctx)
	if !errors.Is(err, engine.ErrLoggedOut) {
		return fmt.Errorf("want a logged-out error, got %v", err)
	}
	return d.until("token_logged_out")
}

func (d *demo) actLogin(ctx context.Context) error {
	d.act(2, "Sign in",
		`A sign-in hands over three tokens: an id token (who you are), an access
token (good for one hour) and a refresh token (good for one use). credfsm
saves them to auth.json, in the Codex format, before anything else.`)
	tokens := d.srv.Issue(oauthtest.Account{Email: "dev@example.com", Plan: "pro",
		UserID: "user-demo", AccountID: "acct-demo"})
	err := d.m.LoginTokens(ctx, tokens.IDToken, tokens.AccessToken, tokens.RefreshToken)
	if err != nil {
		return err
	}
	if err := d.until("persisted"); err != nil {
		return err
	}
	info, err := os.Stat(filepath.Join(d.home, storage.AuthFileName))
	if err != nil {
		return err
	}
	snap := d.m.Snapshot()
	d.note("signed in as %s (%s); auth.json saved, mode %04o; access token %s expires at %s",
		snap.Email, snap.Plan.Display(), info.Mode().Perm(), fingerprint(tokens.AccessToken),
		d.offset(snap.Expiry))
	return nil
}

func (d *demo) actUse(ctx context.Context) error {
	d.act(3, "Use it",
		`A program calls the API through credfsm's http.RoundTripper, which sets
the bearer token. While the tokens are fresh the token is served from memory:
no I/O, no lock, and no transition at all.`)
	tok, status, err := d.call(ctx)
	if err != nil {
		return err
	}
	d.note("GET /v1/models with token %s: %d", fingerprint(tok), status)
	return nil
}

func (d *demo) actExpiry(ctx context.Context) error {
	d.act(4, "Nearly an hour passes",
		`The clock moves 56 minutes on: the access token has four minutes left, and
tokens count as stale from five minutes before their expiry. The timer
credfsm set at sign-in fires, and the tokens are now stale.`)
	d.clock.Advance(56 * time.Minute)
	return d.until("woke_turned_stale")
}

func (d *demo) actRefresh(ctx context.Context) error {
	d.act(5, "Refresh, with rotation",
		`The next request for a token refreshes first: lock the store, re-read it
(has another process refreshed already?), redeem the refresh token, save the
new tokens, and only then hand out the new access token. The server rotates
the refresh token, so the old one is spent.`)
	oldRefresh, err := d.storedRefreshToken()
	if err != nil {
		return err
	}
	tok, status, err := d.call(ctx)
	if err != nil {
		return err
	}
	// The caller that waited for the refresh then takes the new token.
	if err := d.until("persisted_refresh", "token_fresh"); err != nil {
		return err
	}
	newRefresh, err := d.storedRefreshToken()
	if err != nil {
		return err
	}
	d.note("GET /v1/models with the new token %s: %d; refresh token %s -> %s; "+
		"token server redemptions: %d", fingerprint(tok), status, fingerprint(oldRefresh),
		fingerprint(newRefresh), d.srv.Stats().Redemptions)
	return nil
}

func (d *demo) act401(ctx context.Context) error {
	d.act(6, "The API answers 401",
		`The API stops accepting the access token before its expiry (say the
provider rotated its signing keys). The RoundTripper reports the 401, credfsm
refreshes once, and the request is sent again with the new token.`)
	before, err := d.m.Token(ctx)
	if err != nil {
		return err
	}
	d.rejectNext.Store(true)
	tok, status, err := d.call(ctx)
	if err != nil {
		return err
	}
	if err := d.until("persisted_refresh"); err != nil {
		return err
	}
	d.note("GET /v1/models with token %s: 401; retried with %s: %d", fingerprint(before),
		fingerprint(tok), status)

	d.say(`
   A slower request that went out with the old token gets its 401 only now.
   It belongs to an older generation, so nothing starts: the caller is told
   to retry with the current token.`)
	redemptions := d.srv.Stats().Redemptions
	dec := d.m.Observe(ctx, before, http.StatusUnauthorized, nil)
	if err := d.until("unauthorized_old_generation"); err != nil {
		return err
	}
	d.note("decision: %s with token %s; token server redemptions still %d", dec.Action,
		fingerprint(dec.Token), redemptions)
	return nil
}

func (d *demo) actTransient(ctx context.Context) error {
	d.act(7, "The token server has a bad moment",
		`A refresh is asked for ("credctl refresh") while the token server answers
503. That may pass: credfsm backs off for a few seconds, and since the access
token has not expired, callers keep getting it meanwhile.`)
	d.srv.Inject(oauthtest.Status(http.StatusServiceUnavailable))
	err := d.m.Refresh(ctx)
	if !errors.Is(err, engine.ErrTransient) {
		return fmt.Errorf("want a transient failure, got %v", err)
	}
	if err := d.until("refresh_failed"); err != nil {
		return err
	}
	d.note(`"credctl refresh" would exit 4: %s`, d.m.Snapshot().LastError)
	tok, err := d.m.Token(ctx)
	if err != nil {
		return err
	}
	if err := d.until("token_backing_off"); err != nil {
		return err
	}
	d.note("token %s is still served during the backoff", fingerprint(tok))

	d.say(`
   Ten seconds later the backoff is over; the next request refreshes.`)
	d.clock.Advance(10 * time.Second)
	if tok, err = d.m.Token(ctx); err != nil {
		return err
	}
	if err := d.until("persisted_refresh", "token_fresh"); err != nil {
		return err
	}
	d.note("fresh again with token %s", fingerprint(tok))
	return nil
}

func (d *demo) actReuse(ctx context.Context) error {
	d.act(8, "A copy of auth.json is used elsewhere",
		`Someone copies auth.json to a second machine, and that machine refreshes
first. Refresh tokens are single-use: the server rotated it there, and the
copy this machine holds is spent.`)
	rt, err := d.storedRefreshToken()
	if err != nil {
		return err
	}
	other, err := oauth.NewClient(d.srv.CodexProfile(), oauth.WithHTTPClient(d.srv.HTTPClient()),
		oauth.WithClock(d.clock.Now), oauth.WithGetenv(func(string) string { return "" }))
	if err != nil {
		return err
	}
	if _, err := other.Redeem(ctx, states.NewSecret(rt)); err != nil {
		return fmt.Errorf("the other machine's refresh: %w", err)
	}
	d.note("the other machine redeemed refresh token %s", fingerprint(rt))

	d.say(`
   56 minutes later this machine's tokens are stale, and it redeems its
   refresh token. The server says it was already used. That is permanent: no retry can
   help, so credfsm stops and says what to do.`)
	d.clock.Advance(56 * time.Minute)
	if err := d.until("woke_turned_stale"); err != nil {
		return err
	}
	_, err = d.m.Token(ctx)
	var perm *engine.PermanentError
	if !errors.As(err, &perm) {
		return fmt.Errorf("want a permanent failure, got %v", err)
	}
	if err := d.until("refresh_rejected", "token_failed"); err != nil {
		return err
	}
	d.note(`"credctl token" would exit 3: %s; %s`, perm.Reason.Describe(), perm.Reason.NextStep())

	requests := d.srv.Stats().Requests
	if _, err = d.m.Token(ctx); !errors.Is(err, engine.ErrPermanent) {
		return fmt.Errorf("want a permanent failure again, got %v", err)
	}
	if err := d.until("token_failed"); err != nil {
		return err
	}
	d.note("asking again costs nothing: token server requests still %d", requests)
	if d.srv.Stats().Requests != requests {
		return errors.New("a failed credential reached the token server")
	}
	return nil
}

func (d *demo) actLogout(ctx context.Context) error {
	d.act(9, "Sign out",
		`Signing out deletes the credential from every store that may hold it
and reports each one. (Signing in again would have fixed act 8 too.)`)
	removals, err := d.m.Logout(ctx)
	if err != nil {
		return err
	}
	if err := d.until("stores_cleared"); err != nil {
		return err
	}
	for _, r := range removals {
		name, show := removalName(r, storage.ModeFile)
		if !show {
			continue
		}
		what := "was empty"
		if r.Removed {
			what = "removed"
		}
		d.note("%s: %s", what, strings.Replace(name, d.home, "$CODEX_HOME", 1))
	}
	return nil
}

// --- the pieces ------------------------------------------------------------

// serveAPI is a stand-in for the API: it wants a bearer token and, when
// told to, refuses the next one.
func (d *demo) serveAPI(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		http.Error(w, "no bearer token", http.StatusUnauthorized)
		return
	}
	if d.rejectNext.CompareAndSwap(true, false) {
		http.Error(w, "token not accepted", http.StatusUnauthorized)
		return
	}
	fmt.Fprintln(w, `{"data":[]}`)
}

// call sends one API request through the manager's Transport and returns
// the token of the last attempt.
func (d *demo) call(ctx context.Context) (string, int, error) {
	client := &http.Client{Transport: d.m.Transport(nil)}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.api.URL+"/v1/models", nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	tok, err := d.m.Token(ctx)
	return tok, resp.StatusCode, err
}

// until prints delivered transitions until the given rules have fired, in
// that order; transitions by other rules in between are printed too.
func (d *demo) until(rules ...string) error {
	timeout := time.NewTimer(demoWait)
	defer timeout.Stop()
	for len(rules) > 0 {
		select {
		case t := <-d.seen:
			cmds := ""
			if len(t.Commands) > 0 {
				var names []string
				for _, c := range t.Commands {
					names = append(names, c.String())
				}
				cmds = "  then " + strings.Join(names, ", ")
			}
			fmt.Fprintf(d.w, "   %-9s %-18s %s -> %s  [%s]%s\n", d.offset(t.At), t.Event, t.From,
				t.To, t.Rule, cmds)
			if t.Rule == rules[0] {
				rules = rules[1:]
			}
		case <-timeout.C:
			return fmt.Errorf("the story expected a transition by rule %s, which did not come",
				rules[0])
		}
	}
	return nil
}

// storedRefreshToken reads the refresh token from auth.json, as a person
// copying the file would get it.
func (d *demo) storedRefreshToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(d.home, storage.AuthFileName))
	if err != nil {
		return "", err
	}
	var rec struct {
		Tokens struct {
			RefreshToken string `json:"refresh_token"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return "", fmt.Errorf("auth.json: %w", err)
	}
	return rec.Tokens.RefreshToken, nil
}

func (d *demo) act(n int, title, text string) {
	fmt.Fprintf(d.w, "\n== Act %d. %s\n", n, title)
	d.say(indent(text, "   "))
}

func (d *demo) say(text string) {
	fmt.Fprintln(d.w, text)
}

func (d *demo) note(format string, args ...any) {
	fmt.Fprintf(d.w, "   -> "+format+"\n", args...)
}

func (d *demo) offset(t time.Time) string {
	return "+" + span(t.Sub(demoStart))
}

// fingerprint identifies a token without revealing it: the first eight hex
// digits of its SHA-256.
func fingerprint(token string) string {
	if token == "" {
		return "(none)"
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}
