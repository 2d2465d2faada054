package engine_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// apiServer stands in for the API the host calls. It answers 401 to the
// bearer tokens it was told to refuse, 200 otherwise, and records what it
// received.
type apiServer struct {
	*httptest.Server

	mu     sync.Mutex
	refuse map[string]bool
	seen   []apiRequest
}

// apiRequest is what the API server saw of one request.
type apiRequest struct {
	Method, Path  string
	Authorization string
	Account       string
	Custom        string
	Body          string
}

func newAPIServer(t *testing.T) *apiServer {
	a := &apiServer{refuse: map[string]bool{}}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.seen = append(a.seen, apiRequest{
			Method: r.Method, Path: r.URL.Path,
			Authorization: r.Header.Get("Authorization"),
			Account:       r.Header.Get(engine.AccountHeader),
			Custom:        r.Header.Get("X-Custom"),
			Body:          string(body),
		})
		refused := a.refuse[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		a.mu.Unlock()
		if refused {
			http.Error(w, `{"error":{"code":"token_expired"}}`, http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *apiServer) refuseToken(tok string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refuse[tok] = true
}

func (a *apiServer) requests() []apiRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]apiRequest(nil), a.seen...)
}

// client is an http.Client whose transport is m's over the API server's.
func (a *apiServer) client(m *engine.Manager) *http.Client {
	return &http.Client{Transport: m.Transport(a.Client().Transport)}
}

// onlyReader hides every method but Read, so that http.NewRequest cannot
// set GetBody: a body that cannot be sent twice.
type onlyReader struct{ io.Reader }

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// transportRig is a manager signed in with managed tokens that the API
// refuses, in front of the API server.
func transportRig(t *testing.T) (*rig, *engine.Manager, *apiServer, oauthtest.TokenSet) {
	r := newRig(t)
	ts := r.issue(mainAccount)
	r.writeAuth(ts)
	m := r.start(r.config())
	api := newAPIServer(t)
	api.refuseToken(ts.AccessToken)
	return r, m, api, ts
}

// TestTransportRetriesOnceWithTheSameBody: a refused request with a body
// that can be sent again is retried once, with the new token and exactly the
// same body.
func TestTransportRetriesOnceWithTheSameBody(t *testing.T) {
	r, m, api, ts := transportRig(t)
	const payload = `{"model":"gpt","input":"hello"}`
	req, err := http.NewRequest(http.MethodPost, api.URL+"/v1/responses", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := api.client(m).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || readAll(t, resp) != "ok" {
		t.Fatalf("status %d, want 200 after the retry", resp.StatusCode)
	}

	fresh := r.mustAuth().AccessToken
	want := []apiRequest{
		{Method: "POST", Path: "/v1/responses", Authorization: "Bearer " + ts.AccessToken,
			Account: mainAccount.AccountID, Body: payload},
		{Method: "POST", Path: "/v1/responses", Authorization: "Bearer " + fresh,
			Account: mainAccount.AccountID, Body: payload},
	}
	if diff := cmp.Diff(want, api.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if st := r.srv.Stats(); st.Redemptions != 1 {
		t.Errorf("%d redemptions, want 1", st.Redemptions)
	}
}

// TestTransportRetriesOnlyOnce: when the new token is refused too, the
// second 401 is returned; there is no third attempt.
func TestTransportRetriesOnlyOnce(t *testing.T) {
	r, m, api, _ := transportRig(t)
	// The API refuses every token it sees, the refreshed one too.
	refuseAll := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		api.refuseToken(strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer "))
		return api.Client().Transport.RoundTrip(req)
	})
	resp, err := (&http.Client{Transport: m.Transport(refuseAll)}).Get(api.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want the second 401", resp.StatusCode)
	}
	readAll(t, resp)
	if n := len(api.requests()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	if st := r.srv.Stats(); st.Redemptions != 1 {
		t.Fatalf("%d redemptions, want 1", st.Redemptions)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestTransportDoesNotReplayABodyItCannotRewind: a refused request whose
// body cannot be sent again is not retried: the 401 comes back as the API
// sent it. Recovery still runs, so the next request has a working token.
func TestTransportDoesNotReplayABodyItCannotRewind(t *testing.T) {
	r, m, api, ts := transportRig(t)
	req, err := http.NewRequest(http.MethodPost, api.URL+"/v1/upload",
		onlyReader{strings.NewReader("streamed once")})
	if err != nil {
		t.Fatal(err)
	}
	if req.GetBody != nil {
		t.Fatal("the test body can be replayed")
	}
	resp, err := api.client(m).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(readAll(t, resp), "token_expired") {
		t.Fatalf("status %d, want the API's 401 as it came", resp.StatusCode)
	}
	if n := len(api.requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	got, err := m.Token(context.Background())
	if err != nil || got == ts.AccessToken || got != r.mustAuth().AccessToken {
		t.Fatalf("after the 401: Token = %s, %v; want the recovered token", fingerprint(got), err)
	}
	if st := r.srv.Stats(); st.Redemptions != 1 {
		t.Fatalf("%d redemptions, want 1", st.Redemptions)
	}
}

// TestTransportGivesUpOnARefusedAPIKey: an API key is never refreshed; its
// 401 is returned after one attempt.
func TestTransportGivesUpOnARefusedAPIKey(t *testing.T) {
	r := newRig(t)
	m := r.start(r.config())
	const key = "sk-test-refused-key"
	if err := m.LoginAPIKey(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	api := newAPIServer(t)
	api.refuseToken(key)

	resp, err := api.client(m).Post(api.URL+"/v1/responses", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
	want := []apiRequest{{Method: "POST", Path: "/v1/responses", Authorization: "Bearer " + key, Body: "{}"}}
	if diff := cmp.Diff(want, api.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if s := m.Snapshot(); s.State != states.APIKey {
		t.Fatalf("state %s, want api_key", s.State)
	}
	if n := r.requests(); n != 0 {
		t.Fatalf("%d requests reached the token server", n)
	}
}

// TestTransportHeaders: the bearer is set for every profile; the account
// header only for Codex credentials. The caller's request is not changed,
// and its own headers are sent.
func TestTransportHeaders(t *testing.T) {
	tests := []struct {
		name        string
		profile     func(*oauthtest.Server) oauth.Profile
		wantAccount string
	}{
		{"codex", (*oauthtest.Server).CodexProfile, mainAccount.AccountID},
		{"rfc6749", (*oauthtest.Server).RFC6749Profile, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			cfg := r.config()
			p := tt.profile(r.srv)
			cfg.Profile = &p
			m := r.start(cfg)
			ts := r.issue(mainAccount)
			err := m.LoginTokens(context.Background(), ts.IDToken, ts.AccessToken, ts.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			api := newAPIServer(t)

			req, err := http.NewRequest(http.MethodGet, api.URL+"/v1/me", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Custom", "kept")
			before := req.Header.Clone()
			resp, err := api.client(m).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)

			want := []apiRequest{{Method: "GET", Path: "/v1/me", Authorization: "Bearer " + ts.AccessToken,
				Account: tt.wantAccount, Custom: "kept"}}
			if diff := cmp.Diff(want, api.requests()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, req.Header); diff != "" {
				t.Errorf("the caller's request was changed (-before +after):\n%s", diff)
			}
		})
	}
}

// TestTransportLoggedOut: without a credential the transport fails before
// sending anything, with an error wrapping ErrLoggedOut, and closes the
// request body as a RoundTripper must.
func TestTransportLoggedOut(t *testing.T) {
	r := newRig(t)
	m := r.start(r.config())
	api := newAPIServer(t)
	body := &closeRecorder{Reader: strings.NewReader("x")}
	req, err := http.NewRequest(http.MethodPost, api.URL+"/v1/responses", body)
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.client(m).Do(req)
	if !errors.Is(err, engine.ErrLoggedOut) {
		t.Fatalf("error %v, want ErrLoggedOut", err)
	}
	if !body.closed {
		t.Error("the request body was not closed")
	}
	if n := len(api.requests()); n != 0 {
		t.Fatalf("%d requests reached the API", n)
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// TestTokenSource: the oauth2 token source serves the manager's token with
// the access token's expiry, and no expiry for an API key.
func TestTokenSource(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	ts := r.issue(mainAccount)
	r.writeAuth(ts)
	m := r.start(r.config())

	tok, err := m.TokenSource().Token()
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != ts.AccessToken || tok.TokenType != "Bearer" || !tok.Expiry.Equal(ts.AccessExpiry) {
		t.Fatalf("token %s, type %q, expiry %v; want the access token expiring at %v",
			fingerprint(tok.AccessToken), tok.TokenType, tok.Expiry, ts.AccessExpiry)
	}

	if err := m.LoginAPIKey(ctx, "sk-test-token-source"); err != nil {
		t.Fatal(err)
	}
	tok, err = m.TokenSource().Token()
	if err != nil || tok.AccessToken != "sk-test-token-source" || !tok.Expiry.IsZero() {
		t.Fatalf("API key: %+v, %v; want the key without expiry", tok.Expiry, err)
	}
}

// TestTransportKeepsCredentialsToTheOrigin: a redirect within the origin
// keeps the bearer and account headers; a redirect to another origin (here,
// another port) is followed without them, and a 401 from there starts no
// refresh.
func TestTransportKeepsCredentialsToTheOrigin(t *testing.T) {
	r := newRig(t)
	m := r.start(r.config())
	ts := r.issue(mainAccount)
	if err := m.LoginTokens(context.Background(), ts.IDToken, ts.AccessToken, ts.RefreshToken); err != nil {
		t.Fatal(err)
	}

	// elsewhere records what reached it and refuses everything.
	var mu sync.Mutex
	var leaked []string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		leaked = append(leaked, req.Header.Get("Authorization")+"|"+req.Header.Get(engine.AccountHeader))
		mu.Unlock()
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	t.Cleanup(elsewhere.Close)

	api := newAPIServer(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/away", func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, elsewhere.URL+"/collect", http.StatusFound)
	})
	mux.HandleFunc("/here", func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, "/v1/me", http.StatusFound)
	})
	mux.Handle("/", api.Config.Handler)
	api.Config.Handler = mux
	client := api.client(m)

	resp, err := client.Get(api.URL + "/here")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	want := []apiRequest{{Method: "GET", Path: "/v1/me", Authorization: "Bearer " + ts.AccessToken,
		Account: mainAccount.AccountID}}
	if diff := cmp.Diff(want, api.requests()); diff != "" {
		t.Errorf("same-origin redirect (-want +got):\n%s", diff)
	}

	resp, err = client.Get(api.URL + "/away")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status from the other origin = %d, want its 401 as it came", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"|"}, leaked); diff != "" {
		t.Errorf("headers that reached the other origin (-want +got):\n%s", diff)
	}
	if n := r.srv.Stats().Redemptions; n != 0 {
		t.Errorf("the other origin's 401 caused %d redemption(s), want 0", n)
	}
}

// TestTransportAgainstAnAPIThatRefusesEveryToken: the first request's 401
// costs one refresh and one retry; the retry's 401, and every request after
// it within the recovery cooldown, is handed back as it came, without
// another redemption. Once the cooldown has passed, one recovery may run
// again.
func TestTransportAgainstAnAPIThatRefusesEveryToken(t *testing.T) {
	r := newRig(t)
	m := r.start(r.config())
	ts := r.issue(mainAccount)
	if err := m.LoginTokens(context.Background(), ts.IDToken, ts.AccessToken, ts.RefreshToken); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		http.Error(w, `{"error":"insufficient_scope"}`, http.StatusUnauthorized)
	}))
	t.Cleanup(api.Close)
	client := &http.Client{Transport: m.Transport(api.Client().Transport)}

	get := func() {
		t.Helper()
		resp, err := client.Get(api.URL)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want the API's 401", resp.StatusCode)
		}
	}
	for range 20 {
		get()
	}
	if n, c := r.srv.Stats().Redemptions, calls.Load(); n != 1 || c != 21 {
		t.Errorf("20 requests: %d redemptions and %d API calls, want 1 and 21 (one retry)", n, c)
	}

	r.clock.Advance(transitions.DefaultRecoveryCooldown)
	get()
	get()
	if n := r.srv.Stats().Redemptions; n != 2 {
		t.Errorf("after the cooldown: %d redemptions in all, want 2", n)
	}
}
