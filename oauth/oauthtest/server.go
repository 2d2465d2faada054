package oauthtest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
)

// TokenPath is the path of the server's token endpoint.
const TokenPath = "/oauth/token"

// Dialect selects which refresh protocol the server speaks.
type Dialect uint8

const (
	// DialectAuto, the default, answers a JSON request in the Codex dialect
	// and a form-encoded one in the RFC 6749 dialect.
	DialectAuto Dialect = iota
	// DialectCodex expects a JSON request and answers with the three token
	// fields, or with OpenAI's error shape: 401 and
	// {"error":{"message","type","param","code"}}.
	DialectCodex
	// DialectRFC6749 expects a form-encoded request, answers with
	// access_token, token_type, expires_in and refresh_token (and an
	// id_token when the scope asks for openid), and with
	// {"error","error_description"} on failure.
	DialectRFC6749
)

// String returns "auto", "codex" or "rfc6749".
func (d Dialect) String() string {
	switch d {
	case DialectAuto:
		return "auto"
	case DialectCodex:
		return "codex"
	case DialectRFC6749:
		return "rfc6749"
	}
	return fmt.Sprintf("dialect(%d)", uint8(d))
}

// Stats are the server's counters.
type Stats struct {
	// Requests counts every request that reached the server, faults
	// included.
	Requests int
	// Redemptions counts refresh tokens the server accepted and answered
	// with new tokens (whether or not the answer reached the client).
	Redemptions int
	// ReuseAttempts counts requests that presented a refresh token which
	// had already been redeemed.
	ReuseAttempts int
	// MaxInFlight is the largest number of requests handled at once.
	MaxInFlight int
}

// Server is a token endpoint on a loopback address. Create it with
// NewServer and stop it with Close.
//
// Each refresh token is active, used, revoked or expired. Redeeming an
// active one marks it used and issues a new one (unless WithoutRotation);
// presenting a used one counts as a reuse attempt and is refused. A refresh
// token the server never issued is answered as a revoked one.
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:50123.
	URL string
	// TokenURL is URL + TokenPath: what a client posts to.
	TokenURL string

	srv       *httptest.Server
	closing   chan struct{}
	closeOnce sync.Once

	dialect      Dialect
	now          func() time.Time
	clientID     string
	clientSecret string
	rotate       bool
	minter       minter

	mu       sync.Mutex
	refresh  map[string]*refreshState
	faults   []Fault
	stats    Stats
	inFlight int
}

type tokenState uint8

const (
	tokenActive tokenState = iota
	tokenUsed
	tokenRevoked
	tokenExpired
)

type refreshState struct {
	acct  Account
	state tokenState
}

// Option configures a Server.
type Option func(*Server)

// WithDialect makes the server speak only one dialect. A request in the
// other encoding is refused with 400 invalid_request.
func WithDialect(d Dialect) Option { return func(s *Server) { s.dialect = d } }

// WithClock sets the clock that stamps iat and exp (default time.Now). The
// clock must not call back into the server. Delays injected with Delay and
// Hang run on real time regardless.
func WithClock(now func() time.Time) Option {
	return func(s *Server) {
		if now != nil {
			s.now = now
		}
	}
}

// WithLifetime sets the lifetime of id and access tokens (default one hour).
func WithLifetime(d time.Duration) Option {
	return func(s *Server) {
		if d > 0 {
			s.minter.lifetime = d
		}
	}
}

// WithClient sets the client the server accepts (default: the Codex client
// id and no secret). With a secret, a request must authenticate with it,
// through HTTP Basic or a client_secret body field.
func WithClient(id, secret string) Option {
	return func(s *Server) { s.clientID, s.clientSecret = id, secret }
}

// WithoutRotation makes redemptions leave the refresh token as it is and
// omit refresh_token from the response, as providers that do not rotate do.
func WithoutRotation() Option { return func(s *Server) { s.rotate = false } }

// NewServer starts a server on a loopback address.
func NewServer(opts ...Option) *Server {
	s := &Server{
		closing:  make(chan struct{}),
		now:      time.Now,
		clientID: oauth.CodexClientID,
		rotate:   true,
		minter:   minter{key: newKey(), lifetime: time.Hour},
		refresh:  make(map[string]*refreshState),
	}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	s.TokenURL = s.srv.URL + TokenPath
	s.minter.issuer = s.srv.URL
	s.minter.clientID = s.clientID
	return s
}

// Close stops the server. Requests held by Hang, Delay or LoseResponse end
// at once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.srv.Close()
	})
}

// HTTPClient returns an HTTP client configured for the server.
func (s *Server) HTTPClient() *http.Client { return s.srv.Client() }

// CodexProfile returns the Codex profile pointed at this server, with the
// environment override disabled so that the machine's environment cannot
// redirect a test.
func (s *Server) CodexProfile() oauth.Profile {
	p := oauth.CodexProfile()
	p.TokenURL = s.TokenURL
	p.URLEnv = ""
	p.ClientID = s.clientID
	p.ClientSecret = states.NewSecret(s.clientSecret)
	return p
}

// RFC6749Profile returns an RFC 6749 profile for this server's client.
func (s *Server) RFC6749Profile() oauth.Profile {
	return oauth.RFC6749Profile(s.TokenURL, s.clientID, states.NewSecret(s.clientSecret))
}

// Issue mints a token set for acct, as a login would, and registers its
// refresh token as redeemable.
func (s *Server) Issue(acct Account) TokenSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, err := s.minter.mint(acct, s.now(), true)
	if err != nil {
		// HS256 with a byte key cannot fail to sign; if it ever does, the
		// test cannot go on.
		panic(fmt.Sprintf("oauthtest: minting tokens: %v", err))
	}
	s.refresh[ts.RefreshToken] = &refreshState{acct: acct}
	return ts
}

// Revoke marks a refresh token as revoked: presenting it is answered with
// refresh_token_invalidated (Codex) or invalid_grant (RFC 6749). It reports
// whether the server knew the token.
func (s *Server) Revoke(refreshToken string) bool { return s.mark(refreshToken, tokenRevoked) }

// Expire marks a refresh token as expired: presenting it is answered with
// refresh_token_expired (Codex) or invalid_grant (RFC 6749). It reports
// whether the server knew the token.
func (s *Server) Expire(refreshToken string) bool { return s.mark(refreshToken, tokenExpired) }

func (s *Server) mark(refreshToken string, st tokenState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs, ok := s.refresh[refreshToken]
	if ok {
		rs.state = st
	}
	return ok
}

// Inject queues faults; each applies to one of the next requests, in order.
func (s *Server) Inject(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, faults...)
}

// PendingFaults returns how many injected faults have not been used yet.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.faults)
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// serve handles one request.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests++
	s.inFlight++
	s.stats.MaxInFlight = max(s.stats.MaxInFlight, s.inFlight)
	var fault *Fault
	if len(s.faults) > 0 {
		f := s.faults[0]
		fault = &f
		s.faults = slices.Delete(s.faults, 0, 1)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()

	d := s.dialectOf(r)
	if r.URL.Path != TokenPath {
		writeError(w, d, http.StatusNotFound, "not_found", "no such endpoint")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, d, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}

	// Read the whole body first: net/http notices a client that gives up
	// (and cancels r.Context) only once the body has been consumed, and
	// Hang and Delay rely on that.
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		writeError(w, d, http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))

	badID := false
	if fault != nil {
		switch fault.kind {
		case faultRespond:
			if fault.contentType != "" {
				w.Header().Set("Content-Type", fault.contentType)
			}
			w.WriteHeader(fault.status)
			_, _ = w.Write([]byte(fault.body))
			return
		case faultStatus:
			if fault.retryAfter != "" {
				w.Header().Set("Retry-After", fault.retryAfter)
			}
			writeError(w, d, fault.status, "server_error", "injected failure")
			return
		case faultReject:
			writeReject(w, d, fault.code, "injected rejection")
			return
		case faultHang:
			s.wait(r.Context(), -1)
			return
		case faultDelay:
			if !s.wait(r.Context(), fault.delay) {
				return
			}
		case faultLoseResponse:
			s.redeem(httptest.NewRecorder(), r, d, false)
			s.wait(r.Context(), -1)
			return
		case faultBadIDToken:
			badID = true
		}
	}
	s.redeem(w, r, d, badID)
}

// wait blocks for d (forever when d < 0) and reports whether it ran to its
// end, rather than being cut short by the client leaving or Close.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	var elapsed <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		elapsed = t.C
	}
	select {
	case <-elapsed:
		return true
	case <-ctx.Done():
		return false
	case <-s.closing:
		return false
	}
}

// dialectOf decides the dialect of a request.
func (s *Server) dialectOf(r *http.Request) Dialect {
	if s.dialect != DialectAuto {
		return s.dialect
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		return DialectCodex
	}
	return DialectRFC6749
}

// refreshRequest is a refresh request in either dialect, with the client
// credentials it carried.
type refreshRequest struct {
	clientID     string
	clientSecret string
	grantType    string
	refreshToken string
	scope        string
}

// maxRequestBody bounds a request body; refresh requests are tiny.
const maxRequestBody = 64 << 10

// parseRequest reads a refresh request in dialect d. A non-empty code means
// the request is refused with it.
func parseRequest(r *http.Request, d Dialect) (refreshRequest, string, string) {
	var req refreshRequest
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))

	switch d {
	case DialectCodex:
		if mt != "application/json" {
			return req, "invalid_request", "expected a JSON body"
		}
		var f struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
			GrantType    string `json:"grant_type"`
			RefreshToken string `json:"refresh_token"`
			Scope        string `json:"scope"`
		}
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			return req, "invalid_request", "the body is not a JSON object of strings"
		}
		req = refreshRequest{f.ClientID, f.ClientSecret, f.GrantType, f.RefreshToken, f.Scope}
	default:
		if mt != "application/x-www-form-urlencoded" {
			return req, "invalid_request", "expected a form-encoded body"
		}
		if err := r.ParseForm(); err != nil {
			return req, "invalid_request", "the body is not form-encoded"
		}
		f := r.PostForm
		req = refreshRequest{f.Get("client_id"), f.Get("client_secret"),
			f.Get("grant_type"), f.Get("refresh_token"), f.Get("scope")}
	}

	// https://www.rfc-editor.org/rfc/rfc6749#section-2.3: "The client MUST
	// NOT use more than one authentication method in each request."
	if user, pass, ok := r.BasicAuth(); ok {
		if req.clientSecret != "" {
			return req, "invalid_request", "client credentials sent twice"
		}
		id, err1 := url.QueryUnescape(user)
		secret, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil || (req.clientID != "" && req.clientID != id) {
			return req, "invalid_client", "malformed Basic credentials"
		}
		req.clientID, req.clientSecret = id, secret
	}
	return req, "", ""
}

// redeem serves a refresh request: it checks the client and the refresh
// token, and answers with new tokens or with the error the token's state
// calls for.
func (s *Server) redeem(w http.ResponseWriter, r *http.Request, d Dialect, badID bool) {
	req, code, msg := parseRequest(r, d)
	if code != "" {
		writeError(w, d, http.StatusBadRequest, code, msg)
		return
	}
	badSecret := s.clientSecret != "" && !equal(req.clientSecret, s.clientSecret)
	if !equal(req.clientID, s.clientID) || badSecret {
		writeReject(w, d, oauth.CodeInvalidClient, "unknown client or wrong secret")
		return
	}
	if req.grantType != "refresh_token" {
		writeError(w, d, http.StatusBadRequest, "unsupported_grant_type",
			"only refresh_token is supported")
		return
	}
	if req.refreshToken == "" {
		writeError(w, d, http.StatusBadRequest, "invalid_request", "refresh_token is missing")
		return
	}

	s.mu.Lock()
	rs, ok := s.refresh[req.refreshToken]
	var state tokenState
	if ok {
		state = rs.state
	}
	switch {
	case !ok:
		s.mu.Unlock()
		// An unknown token is indistinguishable from one revoked long ago.
		s.refuse(w, d, oauth.CodeRefreshTokenInvalidated, "the refresh token is not known")
		return
	case state == tokenUsed:
		// TODO: some providers (fosite, for one) treat a reuse as theft
		// and revoke every token issued from the same login; an option
		// could model that. OpenAI's endpoint is not known to.
		s.stats.ReuseAttempts++
		s.mu.Unlock()
		s.refuse(w, d, oauth.CodeRefreshTokenReused, "the refresh token was already used")
		return
	case state == tokenRevoked:
		s.mu.Unlock()
		s.refuse(w, d, oauth.CodeRefreshTokenInvalidated, "the refresh token was revoked")
		return
	case state == tokenExpired:
		s.mu.Unlock()
		s.refuse(w, d, oauth.CodeRefreshTokenExpired, "the refresh token has expired")
		return
	}

	ts, err := s.minter.mint(rs.acct, s.now(), s.rotate)
	if err != nil {
		s.mu.Unlock()
		writeError(w, d, http.StatusInternalServerError, "server_error", "cannot sign tokens")
		return
	}
	if s.rotate {
		rs.state = tokenUsed
		s.refresh[ts.RefreshToken] = &refreshState{acct: rs.acct}
	}
	s.stats.Redemptions++
	s.mu.Unlock()

	if badID {
		ts.IDToken = "eyJhbGciOiJIUzI1NiJ9.not*base64.c2ln"
	}
	resp := map[string]any{"access_token": ts.AccessToken}
	if ts.RefreshToken != "" {
		resp["refresh_token"] = ts.RefreshToken
	}
	switch d {
	case DialectCodex:
		resp["id_token"] = ts.IDToken
	default:
		// https://www.rfc-editor.org/rfc/rfc6749#section-5.1
		resp["token_type"] = "Bearer"
		resp["expires_in"] = int(s.minter.lifetime / time.Second)
		if badID || slices.Contains(strings.Fields(req.scope), "openid") {
			resp["id_token"] = ts.IDToken
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// refuse answers a refresh token the server will not redeem. RFC 6749 has a
// single code for all of these.
func (s *Server) refuse(w http.ResponseWriter, d Dialect, codexCode, msg string) {
	if d == DialectCodex {
		writeReject(w, d, codexCode, msg)
		return
	}
	writeReject(w, d, oauth.CodeInvalidGrant, msg)
}

// writeReject answers a permanent refusal with its code.
func writeReject(w http.ResponseWriter, d Dialect, code, msg string) {
	status := http.StatusBadRequest
	switch {
	case d == DialectCodex:
		status = http.StatusUnauthorized
	case code == oauth.CodeInvalidClient:
		// https://www.rfc-editor.org/rfc/rfc6749#section-5.2: invalid_client
		// "MAY return an HTTP 401 (Unauthorized) status code to indicate
		// which HTTP authentication schemes are supported."
		status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Basic realm="oauthtest"`)
	}
	writeError(w, d, status, code, msg)
}

// writeError answers with an error body in the dialect's shape.
func writeError(w http.ResponseWriter, d Dialect, status int, code, msg string) {
	if d == DialectCodex {
		writeJSON(w, status, map[string]any{"error": map[string]any{
			"message": msg, "type": "invalid_request_error", "param": nil, "code": code,
		}})
		return
	}
	writeJSON(w, status, map[string]any{"error": code, "error_description": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	// https://www.rfc-editor.org/rfc/rfc6749#section-5.1: responses with
	// tokens "MUST include the HTTP "Cache-Control" response header field
	// with a value of "no-store"".
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
