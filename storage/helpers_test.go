package storage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credfsm/credfsm/states"
)

// fakeJWT builds an unsigned JWT (alg "none") carrying claims. The third
// segment is a placeholder: credfsm never checks signatures, but Codex
// requires three non-empty segments. It needs no testing.TB so that helper
// processes can build the same records.
func fakeJWT(claims map[string]any) string {
	payload, err := json.Marshal(claims)
	if err != nil {
		panic("fakeJWT: " + err.Error()) // claims are literals in this package
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + ".c2lnbmF0dXJl"
}

// idClaims are the id-token claims of the fixtures' account.
func idClaims(account string) map[string]any {
	return map[string]any{
		"email": "user@example.com",
		"https://api.openai.com/auth": map[string]any{
			"chatgpt_plan_type":  "pro",
			"chatgpt_user_id":    "user-FIXTURE",
			"chatgpt_account_id": account,
		},
	}
}

const (
	fixtureAccount = "11111111-2222-3333-4444-555555555555"
	fixtureAPIKey  = "sk-SECRET-user-key-0001"
	fixtureXKey    = "sk-SECRET-exchanged-0002"
	fixtureRefresh = "rt_SECRET_refresh_0003"
)

var fixtureExpiry = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture is one Codex record shape: its JSON as Codex (or an older Codex)
// writes it, and the record it must load as.
type fixture struct {
	name string
	json string
	want states.Record
}

// tokenSet holds the fixture tokens, built once per test.
type tokenSet struct {
	id, access, opaqueAccess string
}

func fixtureTokens(testing.TB) tokenSet {
	return tokenSet{
		id:           fakeJWT(idClaims(fixtureAccount)),
		access:       fakeJWT(map[string]any{"exp": fixtureExpiry.Unix(), "scope": "openid"}),
		opaqueAccess: "at_SECRET_opaque_0004",
	}
}

// wantClaims are the claims idClaims(fixtureAccount) parse to.
var wantClaims = states.Claims{
	Email:     "user@example.com",
	Plan:      states.PlanPro,
	UserID:    "user-FIXTURE",
	AccountID: fixtureAccount,
}

var fixtureRefreshTime = time.Date(2025, 10, 1, 12, 34, 56, 789012000, time.UTC)

// fixtures returns every record shape Codex writes or has written.
func fixtures(t testing.TB) []fixture {
	tk := fixtureTokens(t)
	managedTokens := states.Tokens{
		IDToken:      states.NewSecret(tk.id),
		AccessToken:  states.NewSecret(tk.access),
		RefreshToken: states.NewSecret(fixtureRefresh),
		AccountID:    fixtureAccount,
	}
	tokensJSON := `{"id_token":"` + tk.id + `","access_token":"` + tk.access +
		`","refresh_token":"` + fixtureRefresh + `","account_id":"` + fixtureAccount + `"}`

	return []fixture{
		{
			name: "managed",
			json: `{"auth_mode":"chatgpt","OPENAI_API_KEY":null,"tokens":` + tokensJSON +
				`,"last_refresh":"2025-10-01T12:34:56.789012Z"}`,
			want: states.Record{Mode: states.ModeManaged, Tokens: managedTokens, Claims: wantClaims,
				AccessExpiry: fixtureExpiry, LastRefresh: fixtureRefreshTime},
		},
		{
			name: "api_key",
			json: `{"auth_mode":"apikey","OPENAI_API_KEY":"` + fixtureAPIKey + `"}`,
			want: states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret(fixtureAPIKey)},
		},
		{
			name: "api_key_legacy_nulls",
			json: `{"OPENAI_API_KEY":"` + fixtureAPIKey + `","tokens":null,"last_refresh":null}`,
			want: states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret(fixtureAPIKey)},
		},
		{
			name: "legacy_without_auth_mode",
			json: `{"OPENAI_API_KEY":null,"tokens":` + tokensJSON +
				`,"last_refresh":"2025-10-01T12:34:56.789012Z"}`,
			want: states.Record{Mode: states.ModeManaged, Tokens: managedTokens, Claims: wantClaims,
				AccessExpiry: fixtureExpiry, LastRefresh: fixtureRefreshTime},
		},
		{
			name: "exchanged_key_and_tokens",
			json: `{"auth_mode":"chatgpt","OPENAI_API_KEY":"` + fixtureXKey + `","tokens":` +
				tokensJSON + `,"last_refresh":"2025-10-01T12:34:56Z"}`,
			want: states.Record{Mode: states.ModeManaged, APIKey: states.NewSecret(fixtureXKey),
				Tokens: managedTokens, Claims: wantClaims, AccessExpiry: fixtureExpiry,
				LastRefresh: time.Date(2025, 10, 1, 12, 34, 56, 0, time.UTC)},
		},
		{
			name: "legacy_key_and_tokens_resolves_api_key",
			json: `{"OPENAI_API_KEY":"` + fixtureXKey + `","tokens":` + tokensJSON +
				`,"last_refresh":"2025-10-01T12:34:56.789012Z"}`,
			want: states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret(fixtureXKey),
				Tokens: managedTokens, Claims: wantClaims, AccessExpiry: fixtureExpiry,
				LastRefresh: fixtureRefreshTime},
		},
		{
			name: "host_managed",
			json: `{"auth_mode":"chatgptAuthTokens","OPENAI_API_KEY":null,` +
				`"tokens":{"id_token":"` + tk.id + `","access_token":"` + tk.opaqueAccess +
				`","refresh_token":"","account_id":"` + fixtureAccount + `"},` +
				`"last_refresh":"2025-10-01T12:34:56.789Z"}`,
			want: states.Record{Mode: states.ModeExternal, Tokens: states.Tokens{
				IDToken: states.NewSecret(tk.id), AccessToken: states.NewSecret(tk.opaqueAccess),
				AccountID: fixtureAccount,
			}, Claims: wantClaims,
				LastRefresh: time.Date(2025, 10, 1, 12, 34, 56, 789000000, time.UTC)},
		},
	}
}

// fixtureSecrets lists every secret string the fixtures contain, and the
// JWT segments that carry data, for leak checks.
func fixtureSecrets(t testing.TB) []string {
	tk := fixtureTokens(t)
	out := []string{
		fixtureAPIKey, fixtureXKey, fixtureRefresh, tk.id, tk.access, tk.opaqueAccess, "SECRET",
	}
	for _, jwt := range []string{tk.id, tk.access} {
		out = append(out, strings.Split(jwt, ".")[1])
	}
	return out
}

// assertNoSecret fails when text contains any of the secrets.
func assertNoSecret(t testing.TB, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("text leaks a secret (%.12s…): %s", s, text)
		}
	}
}

// managedRecord returns a managed record whose refresh token is rt, for
// tests that need several distinct records. t may be nil (in a helper
// process).
func managedRecord(t testing.TB, rt string) states.Record {
	tk := fixtureTokens(t)
	return states.Record{
		Mode: states.ModeManaged,
		Tokens: states.Tokens{
			IDToken: states.NewSecret(tk.id), AccessToken: states.NewSecret(tk.access),
			RefreshToken: states.NewSecret(rt), AccountID: fixtureAccount,
		},
		Claims:       wantClaims,
		AccessExpiry: fixtureExpiry,
		LastRefresh:  fixtureRefreshTime,
	}
}

// externalRecord returns a host-managed record.
func externalRecord(t testing.TB) states.Record {
	for _, f := range fixtures(t) {
		if f.name == "host_managed" {
			return f.want
		}
	}
	t.Fatal("no host_managed fixture")
	return states.Record{}
}

// logRecorder is a slog handler that keeps records for assertions.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count returns how many records at level have a message containing msg.
func (l *logRecorder) count(level slog.Level, msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.Level == level && strings.Contains(r.Message, msg) {
			n++
		}
	}
	return n
}

// text renders every record with its attributes, for leak checks.
func (l *logRecorder) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.records {
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.String())
			return true
		})
		b.WriteByte('\n')
	}
	return b.String()
}

// newLogger returns a logger that records into a fresh logRecorder.
func newLogger() (*slog.Logger, *logRecorder) {
	rec := &logRecorder{}
	return slog.New(rec), rec
}

// writeRaw puts content at <home>/auth.json with the given mode.
func writeRaw(t testing.TB, home, content string, perm os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, AuthFileName)
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

// readRaw returns the content of <home>/auth.json.
func readRaw(t testing.TB, home string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, AuthFileName))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// ctxT returns a context that ends with the test (or after 10 s).
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// contextWithTimeout is context.WithTimeout on a context that ends with the
// test.
func contextWithTimeout(t testing.TB, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctxT(t), d)
}

// mkdirAll creates a private directory and its parents.
func mkdirAll(path string) error { return os.MkdirAll(path, 0o700) }
