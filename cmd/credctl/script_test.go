package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofrs/flock"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
)

// The commands scripts may use besides testscript's own. See the comment of
// each for its syntax.
var scriptCommands = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"exits":       cmdExits,
	"oauthserver": cmdOAuthServer,
	"authjson":    cmdAuthJSON,
	"storelock":   cmdStoreLock,
}

// scriptServer is a loopback token server whose clock a script can set
// back, to mint tokens that are already stale or expired.
type scriptServer struct {
	srv    *oauthtest.Server
	offset atomic.Int64 // added to the wall clock, in nanoseconds
}

func newScriptServer(opts ...oauthtest.Option) *scriptServer {
	s := &scriptServer{}
	s.srv = oauthtest.NewServer(append(opts, oauthtest.WithClock(s.now))...)
	return s
}

func (s *scriptServer) now() time.Time {
	return time.Now().Add(time.Duration(s.offset.Load()))
}

// issueAged mints tokens whose access token expires at now+left.
func (s *scriptServer) issueAged(left time.Duration) oauthtest.TokenSet {
	// Tokens live an hour: issue them as if it were an hour-minus-left ago.
	s.offset.Store(int64(left - time.Hour))
	defer s.offset.Store(0)
	return s.srv.Issue(oauthtest.Account{Email: "dev@example.com", Plan: "pro",
		UserID: "user-test", AccountID: "acct-test"})
}

type serverKey string

const (
	codexServer serverKey = "codex"
	rfcServer   serverKey = "rfc6749"
	storeLocks  serverKey = "storelocks"
)

// The client the RFC 6749 server accepts; the secret reaches credctl
// through the environment variable named by --client-secret-env.
const (
	rfcClientID     = "credctl-test"
	rfcClientSecret = "s3cret-for-tests"
)

// setupScript starts two token servers for each script — one speaking the
// Codex protocol with Codex's client, one plain RFC 6749 with a client
// secret — and exports their URLs as $TOKEN_URL and $RFC_TOKEN_URL. $HOMEDIR
// is an empty Codex home.
func setupScript(env *testscript.Env) error {
	codex := newScriptServer(oauthtest.WithDialect(oauthtest.DialectCodex))
	rfc := newScriptServer(oauthtest.WithDialect(oauthtest.DialectRFC6749),
		oauthtest.WithClient(rfcClientID, rfcClientSecret))
	env.Defer(codex.srv.Close)
	env.Defer(rfc.srv.Close)
	env.Values[codexServer] = codex
	env.Values[rfcServer] = rfc
	locks := &heldLocks{}
	env.Values[storeLocks] = locks
	env.Defer(locks.releaseAll)

	home := filepath.Join(env.WorkDir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		return err
	}
	env.Setenv("TOKEN_URL", codex.srv.TokenURL)
	env.Setenv("RFC_TOKEN_URL", rfc.srv.TokenURL)
	env.Setenv("RFC_CLIENT_ID", rfcClientID)
	env.Setenv("RFC_SECRET", rfcClientSecret)
	env.Setenv("HOMEDIR", home)

	// A binary built with -race sleeps a second before exiting, to let
	// goroutines report; each credctl run would cost that second. Races
	// are still detected and fail the run.
	env.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return nil
}

// exits N command [args...]
//
// Runs the command like exec and checks its exit code; stdout and stderr
// are kept for the next stdout, stderr and cmp commands.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad code %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("exits: %v", err)
	}
	if got != want {
		ts.Fatalf("exit code %d, want %d", got, want)
	}
}

// oauthserver [-rfc] fault FAULT...     queue faults: reject:CODE, status:N,
//
//	ratelimit:SECONDS, html:N, hang,
//	delay:DURATION (answer, and redeem,
//	only after DURATION, e.g. 3s)
//
// oauthserver [-rfc] stats NAME N       check a counter: requests,
//
//	redemptions or reuse
//
// oauthserver [-rfc] redeem FILE        redeem the refresh token in FILE
//
//	elsewhere, as a second machine
//	holding a copy of it would
//
// oauthserver [-rfc] revoke FILE        revoke the refresh token in FILE
// oauthserver [-rfc] down               stop the server
func cmdOAuthServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("oauthserver does not fail on purpose")
	}
	s, args := pickServer(ts, args)
	if len(args) == 0 {
		ts.Fatalf("usage: oauthserver [-rfc] fault|stats|redeem|revoke|down ...")
	}
	switch args[0] {
	case "fault":
		for _, spec := range args[1:] {
			s.srv.Inject(parseFault(ts, spec))
		}
	case "stats":
		if len(args) != 3 {
			ts.Fatalf("usage: oauthserver stats requests|redemptions|reuse N")
		}
		st := s.srv.Stats()
		got := map[string]int{"requests": st.Requests, "redemptions": st.Redemptions,
			"reuse": st.ReuseAttempts}
		n, ok := got[args[1]]
		if !ok {
			ts.Fatalf("unknown counter %q", args[1])
		}
		if strconv.Itoa(n) != args[2] {
			ts.Fatalf("%s = %d, want %s", args[1], n, args[2])
		}
	case "redeem":
		rec := readRecord(ts, args[1])
		profile := s.srv.CodexProfile()
		if s == ts.Value(rfcServer) {
			profile = s.srv.RFC6749Profile()
		}
		c, err := oauth.NewClient(profile, oauth.WithHTTPClient(s.srv.HTTPClient()))
		ts.Check(err)
		_, err = c.Redeem(context.Background(), states.NewSecret(rec.Tokens.RefreshToken))
		ts.Check(err)
	case "revoke":
		rec := readRecord(ts, args[1])
		if !s.srv.Revoke(rec.Tokens.RefreshToken) {
			ts.Fatalf("the server does not know the refresh token in %s", args[1])
		}
	case "down":
		s.srv.Close()
	default:
		ts.Fatalf("unknown oauthserver command %q", args[0])
	}
}

func pickServer(ts *testscript.TestScript, args []string) (*scriptServer, []string) {
	if len(args) > 0 && args[0] == "-rfc" {
		return ts.Value(rfcServer).(*scriptServer), args[1:]
	}
	return ts.Value(codexServer).(*scriptServer), args
}

func parseFault(ts *testscript.TestScript, spec string) oauthtest.Fault {
	kind, arg, _ := strings.Cut(spec, ":")
	num := func() int {
		n, err := strconv.Atoi(arg)
		if err != nil {
			ts.Fatalf("fault %q: want a number after the colon", spec)
		}
		return n
	}
	switch kind {
	case "reject":
		return oauthtest.Reject(arg)
	case "status":
		return oauthtest.Status(num())
	case "ratelimit":
		return oauthtest.RateLimited(arg)
	case "html":
		return oauthtest.HTMLPage(num())
	case "hang":
		return oauthtest.Hang()
	case "delay":
		d, err := time.ParseDuration(arg)
		if err != nil {
			ts.Fatalf("fault %q: want a duration after the colon", spec)
		}
		return oauthtest.Delay(d)
	}
	ts.Fatalf("unknown fault %q", spec)
	return oauthtest.Fault{}
}

// authjson [-rfc] write SHAPE AGE FILE [-extra]
//
//	Write a Codex auth.json with tokens the server issued. SHAPE:
//	managed, exchanged (managed plus an exchanged API key), legacy (no
//	auth_mode), legacy-exchanged (no auth_mode, key and tokens: an API-key
//	record for Codex), apikey, external (host-managed chatgptAuthTokens),
//	login-json (just the three tokens, as "credctl login --tokens" reads).
//	AGE: fresh (59m left), stale (2m left), expired (expired 1h ago).
//	-extra adds members credfsm does not know, which must survive a save.
//
// authjson bearer-is FILE
//
//	The last command's stdout is the bearer FILE holds (with ! : is not).
//
// authjson check FILE [-mode M] [-key K] [-extra]
//
//	FILE is a valid Codex record after a refresh: auth_mode M (chatgpt),
//	OPENAI_API_KEY null (or K), three non-empty tokens whose id token
//	parses, an access token that has not expired, a last_refresh in UTC
//	within the last minute, mode 0600, and with -extra the unknown members
//	written by "write -extra".
//
// authjson rotated OLD NEW
//
//	NEW holds other access and refresh tokens than OLD (with ! : the same).
//
// authjson perm FILE MODE
//
//	FILE has permission bits MODE, e.g. 0600 (not checked on Windows).
func cmdAuthJSON(ts *testscript.TestScript, neg bool, args []string) {
	s, args := pickServer(ts, args)
	if len(args) < 2 {
		ts.Fatalf("usage: authjson write|bearer-is|check|rotated ...")
	}
	switch args[0] {
	case "write":
		if neg || len(args) < 4 {
			ts.Fatalf("usage: authjson write SHAPE AGE FILE [-extra]")
		}
		extra := len(args) > 4 && args[4] == "-extra"
		writeRecord(ts, s, args[1], args[2], args[3], extra)
	case "bearer-is":
		got := strings.TrimSuffix(ts.ReadFile("stdout"), "\n")
		want := readRecord(ts, args[1]).bearer()
		switch {
		case !neg && got != want:
			ts.Fatalf("stdout is not the bearer in %s", args[1])
		case neg && got == want:
			ts.Fatalf("stdout is the bearer in %s", args[1])
		}
	case "check":
		if neg {
			ts.Fatalf("authjson check does not fail on purpose")
		}
		checkRecord(ts, args[1], args[2:])
	case "rotated":
		if len(args) != 3 {
			ts.Fatalf("usage: authjson rotated OLD NEW")
		}
		old, cur := readRecord(ts, args[1]), readRecord(ts, args[2])
		rotated := old.Tokens.AccessToken != cur.Tokens.AccessToken &&
			old.Tokens.RefreshToken != cur.Tokens.RefreshToken
		same := old.Tokens == cur.Tokens
		switch {
		case !neg && !rotated:
			ts.Fatalf("%s does not hold new access and refresh tokens", args[2])
		case neg && !same:
			ts.Fatalf("%s holds other tokens than %s", args[2], args[1])
		}
	case "perm":
		if neg || len(args) != 3 {
			ts.Fatalf("usage: authjson perm FILE MODE")
		}
		if runtime.GOOS == "windows" {
			return
		}
		info, err := os.Stat(ts.MkAbs(args[1]))
		ts.Check(err)
		if got := fmt.Sprintf("%04o", info.Mode().Perm()); got != args[2] {
			ts.Fatalf("%s has mode %s, want %s", args[1], got, args[2])
		}
	default:
		ts.Fatalf("unknown authjson command %q", args[0])
	}
}

// record is the part of a Codex auth.json the checks read.
type record struct {
	AuthMode *string `json:"auth_mode"`
	APIKey   *string `json:"OPENAI_API_KEY"`
	Tokens   struct {
		IDToken      string  `json:"id_token"`
		AccessToken  string  `json:"access_token"`
		RefreshToken string  `json:"refresh_token"`
		AccountID    *string `json:"account_id"`
	} `json:"tokens"`
	LastRefresh string `json:"last_refresh"`
}

// bearer resolves the record's mode as Codex does and returns what it
// sends as the bearer.
func (r record) bearer() string {
	mode := "chatgpt"
	switch {
	case r.AuthMode != nil:
		mode = *r.AuthMode
	case r.APIKey != nil:
		mode = "apikey"
	}
	if mode == "apikey" && r.APIKey != nil {
		return *r.APIKey
	}
	return r.Tokens.AccessToken
}

func readRecord(ts *testscript.TestScript, file string) record {
	var r record
	if err := json.Unmarshal([]byte(ts.ReadFile(file)), &r); err != nil {
		ts.Fatalf("%s: %v", file, err)
	}
	return r
}

// member is one name/value pair of a record, written in this order.
type member struct {
	name  string
	value any
}

const (
	exchangedKey = "sk-FAKE-exchanged"
	userKey      = "sk-FAKE-user-key"
)

func writeRecord(ts *testscript.TestScript, s *scriptServer, shape, age, file string, extra bool) {
	left := map[string]time.Duration{"fresh": 59 * time.Minute, "stale": 2 * time.Minute,
		"expired": -time.Hour}[age]
	if left == 0 {
		ts.Fatalf("unknown age %q (want fresh, stale or expired)", age)
	}
	set := s.issueAged(left)
	issued := set.AccessExpiry.Add(-time.Hour).UTC().Format("2006-01-02T15:04:05.000000Z")

	tokens := []member{
		{"id_token", set.IDToken},
		{"access_token", set.AccessToken},
		{"refresh_token", set.RefreshToken},
		{"account_id", set.Account.AccountID},
	}
	if extra {
		tokens = append(tokens, member{"x_token_note", "kept by credfsm"})
	}
	var m []member
	switch shape {
	case "managed":
		m = []member{{"auth_mode", "chatgpt"}, {"OPENAI_API_KEY", nil}, {"tokens", tokens},
			{"last_refresh", issued}}
	case "exchanged":
		m = []member{{"auth_mode", "chatgpt"}, {"OPENAI_API_KEY", exchangedKey},
			{"tokens", tokens}, {"last_refresh", issued}}
	case "legacy":
		m = []member{{"OPENAI_API_KEY", nil}, {"tokens", tokens}, {"last_refresh", issued}}
	case "legacy-exchanged":
		m = []member{{"OPENAI_API_KEY", exchangedKey}, {"tokens", tokens},
			{"last_refresh", issued}}
	case "apikey":
		m = []member{{"auth_mode", "apikey"}, {"OPENAI_API_KEY", userKey}}
	case "login-json":
		m = tokens[:3]
	case "external":
		tokens[2].value = ""
		m = []member{{"auth_mode", "chatgptAuthTokens"}, {"OPENAI_API_KEY", nil},
			{"tokens", tokens}, {"last_refresh", issued}}
	default:
		ts.Fatalf("unknown shape %q", shape)
	}
	if extra {
		m = append(m, member{"x_other_tool", map[string]any{"kept": true}})
	}

	var buf bytes.Buffer
	writeObject(ts, &buf, m)
	var pretty bytes.Buffer
	ts.Check(json.Indent(&pretty, buf.Bytes(), "", "  "))
	pretty.WriteByte('\n')
	ts.Check(os.WriteFile(ts.MkAbs(file), pretty.Bytes(), 0o600))
}

func writeObject(ts *testscript.TestScript, b *bytes.Buffer, m []member) {
	b.WriteByte('{')
	for i, kv := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(kv.name)
		b.Write(name)
		b.WriteByte(':')
		if sub, ok := kv.value.([]member); ok {
			writeObject(ts, b, sub)
			continue
		}
		v, err := json.Marshal(kv.value)
		ts.Check(err)
		b.Write(v)
	}
	b.WriteByte('}')
}

func checkRecord(ts *testscript.TestScript, file string, flags []string) {
	wantMode, wantKey, extra := "chatgpt", "", false
	for i := 0; i < len(flags); i++ {
		switch flags[i] {
		case "-mode":
			i++
			wantMode = flags[i]
		case "-key":
			i++
			wantKey = flags[i]
		case "-extra":
			extra = true
		default:
			ts.Fatalf("authjson check: unknown flag %q", flags[i])
		}
	}

	data := []byte(ts.ReadFile(file))
	var raw map[string]json.RawMessage
	ts.Check(json.Unmarshal(data, &raw))
	r := readRecord(ts, file)
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}

	if r.AuthMode == nil || *r.AuthMode != wantMode {
		bad("auth_mode is not %q", wantMode)
	}
	switch key, ok := raw["OPENAI_API_KEY"]; {
	case !ok:
		bad("OPENAI_API_KEY is missing (Codex always writes it)")
	case wantKey == "" && string(key) != "null":
		bad("OPENAI_API_KEY is not null")
	case wantKey != "" && (r.APIKey == nil || *r.APIKey != wantKey):
		bad("OPENAI_API_KEY is not the exchanged key")
	}
	if r.Tokens.IDToken == "" || r.Tokens.AccessToken == "" || r.Tokens.RefreshToken == "" {
		bad("a token is missing or empty")
	}
	if _, err := oauth.ParseIDToken(r.Tokens.IDToken); err != nil {
		bad("id_token does not parse: %v", err)
	}
	if exp, ok := oauth.AccessTokenExpiry(r.Tokens.AccessToken); !ok || !exp.After(time.Now()) {
		bad("the access token has no expiry or has expired")
	}
	if r.Tokens.AccountID == nil || *r.Tokens.AccountID == "" {
		bad("tokens.account_id is missing")
	}
	lr, err := time.Parse(time.RFC3339Nano, r.LastRefresh)
	switch {
	case err != nil:
		bad("last_refresh does not parse: %v", err)
	case !strings.HasSuffix(r.LastRefresh, "Z"):
		bad("last_refresh is not in UTC with Z")
	case time.Since(lr) > time.Minute || time.Until(lr) > time.Minute:
		bad("last_refresh %s is not now", r.LastRefresh)
	}
	if extra {
		var other struct{ Kept bool }
		if json.Unmarshal(raw["x_other_tool"], &other) != nil || !other.Kept {
			bad("the unknown member x_other_tool was not kept")
		}
		if !bytes.Contains(data, []byte(`"x_token_note": "kept by credfsm"`)) {
			bad("the unknown member tokens.x_token_note was not kept")
		}
	}
	if runtime.GOOS != "windows" {
		info, err := os.Stat(ts.MkAbs(file))
		ts.Check(err)
		if info.Mode().Perm() != 0o600 {
			bad("mode is %04o, want 0600", info.Mode().Perm())
		}
	}
	if len(problems) > 0 {
		ts.Fatalf("%s is not a valid refreshed Codex record:\n  %s", file,
			strings.Join(problems, "\n  "))
	}
}

// heldLocks are the store locks a script holds, by home.
type heldLocks struct {
	mu    sync.Mutex
	locks map[string]*flock.Flock
}

func (h *heldLocks) releaseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for home, fl := range h.locks {
		_ = fl.Unlock()
		delete(h.locks, home)
	}
}

// storelock hold HOME
// storelock release HOME
//
//	Take (or let go of) the store lock of the Codex home HOME from the test
//	process, as another credctl or Codex in the middle of a refresh would
//	hold it. The lock is released when the script ends.
func cmdStoreLock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: storelock hold|release HOME")
	}
	h := ts.Value(storeLocks).(*heldLocks)
	home := ts.MkAbs(args[1])
	h.mu.Lock()
	defer h.mu.Unlock()
	switch args[0] {
	case "hold":
		if h.locks[home] != nil {
			ts.Fatalf("storelock: %s is already held", args[1])
		}
		fl := flock.New(filepath.Join(home, storage.LockFileName), flock.SetPermissions(0o600))
		ok, err := fl.TryLock()
		ts.Check(err)
		if !ok {
			ts.Fatalf("storelock: %s is locked by someone else", args[1])
		}
		if h.locks == nil {
			h.locks = map[string]*flock.Flock{}
		}
		h.locks[home] = fl
	case "release":
		fl := h.locks[home]
		if fl == nil {
			ts.Fatalf("storelock: %s is not held", args[1])
		}
		ts.Check(fl.Unlock())
		delete(h.locks, home)
	default:
		ts.Fatalf("unknown storelock command %q", args[0])
	}
}
