package engine_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/credfsm/credfsm/effects/effectstest"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
)

// Shared fixtures of the Manager tests. The Machine tests in this package
// have fixtures of their own; names here are chosen not to collide.

// mgrStart is where the manual clock of a rig starts. It is a whole second
// because the token server truncates exp claims to seconds.
var mgrStart = time.Date(2026, time.April, 6, 10, 0, 0, 0, time.UTC)

// The accounts the token server issues tokens for.
var (
	mainAccount = oauthtest.Account{
		Email: "dev@example.com", Plan: "pro", UserID: "user-main", AccountID: "acct-main"}
	otherAccount = oauthtest.Account{
		Email: "ops@example.com", Plan: "team", UserID: "user-other", AccountID: "acct-other"}
)

// waitLimit bounds every wait for something asynchronous; reaching it fails
// the test instead of hanging it.
const waitLimit = 10 * time.Second

// noLeaks makes the test fail if goroutines it started outlive it. Call it
// first, so that its cleanup runs after every other one (managers closed,
// servers stopped). Tests that use it must not be parallel.
func noLeaks(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

// rig is one credential's world: a manual clock, a token server stamping
// tokens with that clock, a Codex home in a temp dir, a gate in front of the
// token server and a log buffer.
type rig struct {
	t     *testing.T
	clock *effectstest.Clock
	srv   *oauthtest.Server
	gate  *gate
	home  string
	logs  *logBuffer
}

func newRig(t *testing.T, opts ...oauthtest.Option) *rig {
	t.Helper()
	noLeaks(t)
	clock := effectstest.NewClock(mgrStart)
	srv := oauthtest.NewServer(append([]oauthtest.Option{oauthtest.WithClock(clock.Now)}, opts...)...)
	t.Cleanup(srv.Close)
	return &rig{
		t:     t,
		clock: clock,
		srv:   srv,
		gate:  newGate(srv.HTTPClient().Transport),
		home:  t.TempDir(),
		logs:  &logBuffer{},
	}
}

// config is a Config for the rig: the file store in the temp home, the
// Codex profile at the token server (through the gate), the manual clock
// and a debug logger into the log buffer.
func (r *rig) config() engine.Config {
	p := r.srv.CodexProfile()
	return engine.Config{
		Home:       r.home,
		Profile:    &p,
		HTTPClient: &http.Client{Transport: r.gate},
		Clock:      r.clock,
		Logger:     r.logs.logger(),
	}
}

// start builds a manager from cfg and closes it when the test ends.
func (r *rig) start(cfg engine.Config) *engine.Manager {
	r.t.Helper()
	m, err := engine.New(context.Background(), cfg)
	if err != nil {
		r.t.Fatalf("New: %v", err)
	}
	r.t.Cleanup(func() { m.Close() })
	return m
}

// issue mints tokens at the rig's clock, as a login would.
func (r *rig) issue(acct oauthtest.Account) oauthtest.TokenSet { return r.srv.Issue(acct) }

// authPath is the Codex auth.json of the rig's home.
func (r *rig) authPath() string { return filepath.Join(r.home, storage.AuthFileName) }

// writeAuth writes auth.json as Codex (or another credfsm process) would,
// with the tokens last refreshed now.
func (r *rig) writeAuth(ts oauthtest.TokenSet) {
	r.t.Helper()
	writeAuthFile(r.t, r.home, ts, r.clock.Now())
}

func writeAuthFile(t testing.TB, home string, ts oauthtest.TokenSet, refreshed time.Time) {
	t.Helper()
	acct := ts.Account.AccountID
	doc := authFile{
		AuthMode: "chatgpt",
		Tokens: &authTokens{
			IDToken: ts.IDToken, AccessToken: ts.AccessToken, RefreshToken: ts.RefreshToken,
			AccountID: &acct,
		},
		LastRefresh: refreshed.UTC().Format(time.RFC3339Nano),
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, storage.AuthFileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeAPIKeyFile writes an API-key auth.json as Codex would.
func writeAPIKeyFile(t testing.TB, home, key string) {
	t.Helper()
	data, err := json.Marshal(authFile{AuthMode: "apikey", APIKey: &key})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, storage.AuthFileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// authFile is the wire shape of Codex's auth.json, as far as the tests look.
type authFile struct {
	AuthMode    string      `json:"auth_mode,omitempty"`
	APIKey      *string     `json:"OPENAI_API_KEY"`
	Tokens      *authTokens `json:"tokens,omitempty"`
	LastRefresh string      `json:"last_refresh,omitempty"`
}

type authTokens struct {
	IDToken      string  `json:"id_token"`
	AccessToken  string  `json:"access_token"`
	RefreshToken string  `json:"refresh_token"`
	AccountID    *string `json:"account_id"`
}

// readAuth returns what auth.json holds, or ok=false when there is no file.
func (r *rig) readAuth() (authFile, bool) {
	r.t.Helper()
	return readAuthFile(r.t, r.home)
}

func readAuthFile(t testing.TB, home string) (authFile, bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(home, storage.AuthFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return authFile{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var doc authFile
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("auth.json does not parse: %v", err)
	}
	return doc, true
}

// mustAuth returns the tokens auth.json holds and fails when there are none.
func (r *rig) mustAuth() authTokens {
	r.t.Helper()
	doc, ok := r.readAuth()
	if !ok || doc.Tokens == nil {
		r.t.Fatalf("auth.json holds no tokens (present: %v)", ok)
	}
	return *doc.Tokens
}

// requests returns how many requests reached the token server.
func (r *rig) requests() int { return r.srv.Stats().Requests }

// gate sits in front of the token server. While held, requests wait at it;
// each request that reaches it is announced on arrived.
type gate struct {
	base    http.RoundTripper
	arrived chan struct{}

	mu   sync.Mutex
	open chan struct{}
}

func newGate(base http.RoundTripper) *gate {
	g := &gate{base: base, arrived: make(chan struct{}, 4096), open: make(chan struct{})}
	close(g.open)
	return g
}

// hold makes the next requests wait until release.
func (g *gate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default:
	}
}

// release lets waiting and later requests through.
func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// awaitArrival waits until a request has reached the gate.
func (g *gate) awaitArrival(t testing.TB) {
	t.Helper()
	select {
	case <-g.arrived:
	case <-time.After(waitLimit):
		t.Fatal("no request reached the token server")
	}
}

func (g *gate) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case g.arrived <- struct{}{}:
	default:
	}
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
	case <-req.Context().Done():
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, req.Context().Err()
	}
	return g.base.RoundTrip(req)
}

// logBuffer collects JSON log lines, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// logLine is one decoded JSON log record.
type logLine map[string]any

func (l logLine) str(key string) string { s, _ := l[key].(string); return s }

// lines decodes every record logged so far.
func (b *logBuffer) lines(t testing.TB) []logLine {
	t.Helper()
	var out []logLine
	for _, raw := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if raw == "" {
			continue
		}
		var l logLine
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, raw)
		}
		out = append(out, l)
	}
	return out
}

// ruleLog records the transitions a manager publishes through Subscribe.
type ruleLog struct {
	mu    sync.Mutex
	all   []engine.Transition
	taken int
	more  chan struct{}
}

// watch subscribes to m for the rest of the test.
func watch(t testing.TB, m *engine.Manager) *ruleLog {
	l := &ruleLog{more: make(chan struct{}, 1)}
	unsubscribe := m.Subscribe(func(tr engine.Transition) {
		l.mu.Lock()
		l.all = append(l.all, tr)
		l.mu.Unlock()
		select {
		case l.more <- struct{}{}:
		default:
		}
	})
	t.Cleanup(unsubscribe)
	return l
}

// next waits for the next n transitions and returns their rules.
func (l *ruleLog) next(t testing.TB, n int) []string {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		l.mu.Lock()
		if len(l.all)-l.taken >= n {
			got := l.all[l.taken : l.taken+n]
			l.taken += n
			l.mu.Unlock()
			return ruleIDs(got)
		}
		have := ruleIDs(l.all[l.taken:])
		l.mu.Unlock()
		select {
		case <-l.more:
		case <-deadline:
			t.Fatalf("waited for %d transitions, saw %d: %v", n, len(have), have)
			return nil
		}
	}
}

// until waits until rule has been seen among the transitions not yet
// taken, and returns the rules up to and including it.
func (l *ruleLog) until(t testing.TB, rule string) []string {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		l.mu.Lock()
		for i := l.taken; i < len(l.all); i++ {
			if l.all[i].Rule == rule {
				got := ruleIDs(l.all[l.taken : i+1])
				l.taken = i + 1
				l.mu.Unlock()
				return got
			}
		}
		have := ruleIDs(l.all[l.taken:])
		l.mu.Unlock()
		select {
		case <-l.more:
		case <-deadline:
			t.Fatalf("waited for rule %s, saw %v", rule, have)
			return nil
		}
	}
}

// rest returns the rules not taken yet, without waiting.
func (l *ruleLog) rest() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	got := ruleIDs(l.all[l.taken:])
	l.taken = len(l.all)
	return got
}

// transitions returns every transition seen.
func (l *ruleLog) transitions() []engine.Transition {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]engine.Transition(nil), l.all...)
}

func ruleIDs(ts []engine.Transition) []string {
	out := make([]string, len(ts))
	for i, tr := range ts {
		out[i] = tr.Rule
	}
	return out
}

// eventually polls cond until it holds or waitLimit passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitState waits until the manager's snapshot is in state s.
func waitState(t testing.TB, m *engine.Manager, s states.State) {
	t.Helper()
	eventually(t, "state "+s.String(), func() bool { return m.Snapshot().State == s })
}

// fingerprint names a token without showing it.
func fingerprint(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:6])
}

// secretsOf lists the secret strings of token sets, for leak checks.
func secretsOf(sets ...oauthtest.TokenSet) []string {
	var out []string
	for _, ts := range sets {
		out = append(out, ts.IDToken, ts.AccessToken, ts.RefreshToken)
	}
	return out
}
