package oauthtest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
)

var alice = Account{
	Email: "alice@example.com", Plan: "pro", UserID: "user-alice", AccountID: "acct-alice",
}

func newClient(t *testing.T, p oauth.Profile, opts ...oauth.Option) *oauth.Client {
	t.Helper()
	c, err := oauth.NewClient(p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func redeem(c *oauth.Client, rt string) (states.Grant, *states.RefreshError) {
	g, err := c.Redeem(context.Background(), states.NewSecret(rt))
	if err == nil {
		return g, nil
	}
	var re *states.RefreshError
	if !errors.As(err, &re) {
		re = &states.RefreshError{Err: err}
	}
	return g, re
}

func TestIssueMintsSignedTokens(t *testing.T) {
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	s := NewServer(WithClock(func() time.Time { return now }), WithLifetime(15*time.Minute))
	defer s.Close()

	ts := s.Issue(alice)
	wantExp := now.Add(15 * time.Minute)
	if !ts.AccessExpiry.Equal(wantExp) {
		t.Errorf("AccessExpiry = %v, want %v", ts.AccessExpiry, wantExp)
	}

	for name, tok := range map[string]string{"id": ts.IDToken, "access": ts.AccessToken} {
		claims := jwt.MapClaims{}
		key := func(*jwt.Token) (any, error) { return s.minter.key, nil }
		_, err := jwt.ParseWithClaims(tok, claims, key,
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return now }))
		if err != nil {
			t.Fatalf("%s token does not verify: %v", name, err)
		}
		exp, _ := claims.GetExpirationTime()
		if exp == nil || !exp.Time.Equal(wantExp) {
			t.Errorf("%s token exp = %v, want %v", name, exp, wantExp)
		}
	}

	claims, err := oauth.ParseIDToken(ts.IDToken)
	if err != nil {
		t.Fatal(err)
	}
	want := states.Claims{
		Email: alice.Email, Plan: states.PlanPro, UserID: alice.UserID, AccountID: alice.AccountID,
	}
	if diff := cmp.Diff(want, claims); diff != "" {
		t.Errorf("id token claims (-want +got):\n%s", diff)
	}
	if exp, ok := oauth.AccessTokenExpiry(ts.AccessToken); !ok || !exp.Equal(wantExp) {
		t.Errorf("access token exp = %v, %v; want %v", exp, ok, wantExp)
	}
	if ts.Tokens().AccountID != alice.AccountID {
		t.Errorf("Tokens().AccountID = %q, want %q", ts.Tokens().AccountID, alice.AccountID)
	}
}

func TestRotation(t *testing.T) {
	for _, dialect := range []string{"codex", "rfc6749"} {
		t.Run(dialect, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			p := s.CodexProfile()
			if dialect == "rfc6749" {
				p = s.RFC6749Profile()
				p.Scope = "openid"
			}
			c := newClient(t, p)

			rt := s.Issue(alice).RefreshToken
			seen := map[string]bool{rt: true}
			for i := range 3 {
				g, e := redeem(c, rt)
				if e != nil {
					t.Fatalf("redemption %d: %v", i+1, e)
				}
				next := g.RefreshToken.Reveal()
				if next == "" || seen[next] {
					t.Fatalf("redemption %d returned refresh token %q, want a new one", i+1, next)
				}
				if g.Claims.AccountID != alice.AccountID || g.IDTokenErr != nil {
					t.Errorf("redemption %d: claims %+v, id token error %v", i+1, g.Claims, g.IDTokenErr)
				}
				seen[next] = true
				rt = next
			}
			want := Stats{Requests: 3, Redemptions: 3, MaxInFlight: 1}
			if diff := cmp.Diff(want, s.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReuseDetection(t *testing.T) {
	tests := []struct {
		name    string
		profile func(*Server) oauth.Profile
		want    states.RefreshError
	}{
		{
			name:    "codex",
			profile: (*Server).CodexProfile,
			want: states.RefreshError{Permanent: true, Reason: states.ReasonReused, Status: 401,
				Code: "refresh_token_reused"},
		},
		{
			name:    "rfc6749",
			profile: (*Server).RFC6749Profile,
			want: states.RefreshError{Permanent: true, Reason: states.ReasonInvalidGrant, Status: 400,
				Code: "invalid_grant"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			c := newClient(t, tt.profile(s))
			rt := s.Issue(alice).RefreshToken

			if _, e := redeem(c, rt); e != nil {
				t.Fatalf("first redemption: %v", e)
			}
			_, e := redeem(c, rt)
			if e == nil {
				t.Fatal("second redemption of the same token succeeded")
			}
			got := *e
			got.Detail, got.Err = "", nil
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("reuse error (-want +got):\n%s", diff)
			}
			if st := s.Stats(); st.ReuseAttempts != 1 || st.Redemptions != 1 {
				t.Errorf("stats = %+v, want 1 redemption and 1 reuse attempt", st)
			}
		})
	}
}

func TestWithoutRotation(t *testing.T) {
	s := NewServer(WithoutRotation())
	defer s.Close()
	c := newClient(t, s.CodexProfile())
	rt := s.Issue(alice).RefreshToken
	for i := range 2 {
		g, e := redeem(c, rt)
		if e != nil {
			t.Fatalf("redemption %d: %v", i+1, e)
		}
		if !g.RefreshToken.IsZero() {
			t.Errorf("redemption %d returned a refresh token; want it left out", i+1)
		}
	}
}

func TestRevokeAndExpire(t *testing.T) {
	tests := []struct {
		name       string
		profile    func(*Server) oauth.Profile
		mark       func(*Server, string) bool
		wantReason states.Reason
	}{
		{"codex/revoked", (*Server).CodexProfile, (*Server).Revoke, states.ReasonRevoked},
		{"codex/expired", (*Server).CodexProfile, (*Server).Expire, states.ReasonExpired},
		{"rfc6749/revoked", (*Server).RFC6749Profile, (*Server).Revoke, states.ReasonInvalidGrant},
		{"rfc6749/expired", (*Server).RFC6749Profile, (*Server).Expire, states.ReasonInvalidGrant},
		{"codex/unknown", (*Server).CodexProfile, nil, states.ReasonRevoked},
		{"rfc6749/unknown", (*Server).RFC6749Profile, nil, states.ReasonInvalidGrant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			rt := "rt_never_issued"
			if tt.mark != nil {
				rt = s.Issue(alice).RefreshToken
				if !tt.mark(s, rt) {
					t.Fatal("server did not know the token it issued")
				}
			}
			_, e := redeem(newClient(t, tt.profile(s)), rt)
			if e == nil || !e.Permanent || e.Reason != tt.wantReason {
				t.Fatalf("got %v, want permanent %v", e, tt.wantReason)
			}
		})
	}
	s := NewServer()
	defer s.Close()
	if s.Revoke("nope") || s.Expire("nope") {
		t.Error("Revoke or Expire reported an unknown token as known")
	}
}

func TestFaults(t *testing.T) {
	type want struct {
		class    string // success, transient, permanent
		reason   states.Reason
		status   int
		retry    time.Duration
		err      error  // sentinel
		detail   string // substring
		idErr    bool   // success with IDTokenErr
		consumed bool   // the refresh token sent is no longer redeemable
	}
	tests := []struct {
		name    string
		rfc     bool
		fault   Fault
		timeout time.Duration
		want    want
	}{
		{name: "status 500", fault: Status(500), want: want{class: "transient", status: 500}},
		{name: "status 503", fault: Status(503), want: want{class: "transient", status: 503}},
		{name: "status 408", fault: Status(408), want: want{class: "transient", status: 408}},
		{name: "rate limited", fault: RateLimited("7"),
			want: want{class: "transient", status: 429, retry: 7 * time.Second}},
		{name: "delay", fault: Delay(20 * time.Millisecond),
			want: want{class: "success", consumed: true}},
		{name: "delay past the timeout", fault: Delay(time.Minute), timeout: 50 * time.Millisecond,
			want: want{class: "transient", err: context.DeadlineExceeded}},
		{name: "hang", fault: Hang(), timeout: 50 * time.Millisecond,
			want: want{class: "transient", err: context.DeadlineExceeded}},
		{name: "lose response", fault: LoseResponse(), timeout: 50 * time.Millisecond,
			want: want{class: "transient", err: context.DeadlineExceeded, consumed: true}},
		{name: "malformed JSON", fault: MalformedJSON(),
			want: want{class: "transient", status: 200, err: oauth.ErrNotJSON}},
		{name: "oversized", fault: Oversized(),
			want: want{class: "transient", status: 200, err: oauth.ErrBodyTooLarge}},
		{name: "HTML page", fault: HTMLPage(502),
			want: want{class: "transient", status: 502, detail: "HTML page: Bad Gateway"}},
		{name: "bad id token", fault: BadIDToken(),
			want: want{class: "success", idErr: true, consumed: true}},
		{name: "bad id token/rfc6749", rfc: true, fault: BadIDToken(),
			want: want{class: "success", idErr: true, consumed: true}},
		{name: "custom", fault: Respond(418, "text/plain", "short and stout"),
			want: want{class: "transient", status: 418, detail: "short and stout"}},
		{name: "reject expired", fault: Reject(oauth.CodeRefreshTokenExpired),
			want: want{class: "permanent", reason: states.ReasonExpired, status: 401}},
		{name: "reject reused", fault: Reject(oauth.CodeRefreshTokenReused),
			want: want{class: "permanent", reason: states.ReasonReused, status: 401}},
		{name: "reject invalidated", fault: Reject(oauth.CodeRefreshTokenInvalidated),
			want: want{class: "permanent", reason: states.ReasonRevoked, status: 401}},
		{name: "reject invalid_grant", fault: Reject(oauth.CodeInvalidGrant),
			want: want{class: "permanent", reason: states.ReasonInvalidGrant, status: 401}},
		{name: "reject invalid_client", fault: Reject(oauth.CodeInvalidClient),
			want: want{class: "permanent", reason: states.ReasonClientRejected, status: 401}},
		{name: "reject invalid_grant/rfc6749", rfc: true, fault: Reject(oauth.CodeInvalidGrant),
			want: want{class: "permanent", reason: states.ReasonInvalidGrant, status: 400}},
		{name: "reject invalid_client/rfc6749", rfc: true, fault: Reject(oauth.CodeInvalidClient),
			want: want{class: "permanent", reason: states.ReasonClientRejected, status: 401}},
		{name: "status 500/rfc6749", rfc: true, fault: Status(500),
			want: want{class: "transient", status: 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			p := s.CodexProfile()
			if tt.rfc {
				p = s.RFC6749Profile()
			}
			var opts []oauth.Option
			if tt.timeout > 0 {
				opts = append(opts, oauth.WithTimeout(tt.timeout))
			}
			c := newClient(t, p, opts...)
			ts := s.Issue(alice)

			s.Inject(tt.fault)
			g, e := redeem(c, ts.RefreshToken)

			class := "success"
			if e != nil {
				class = "transient"
				if e.Permanent {
					class = "permanent"
				}
			}
			if class != tt.want.class {
				t.Fatalf("outcome %s (%v), want %s", class, e, tt.want.class)
			}
			if e != nil {
				got := want{class: class, reason: e.Reason, status: e.Status, retry: e.RetryAfter}
				wantCmp := tt.want
				wantCmp.err, wantCmp.detail, wantCmp.idErr, wantCmp.consumed = nil, "", false, false
				if diff := cmp.Diff(wantCmp, got, cmp.AllowUnexported(want{})); diff != "" {
					t.Errorf("error mismatch (-want +got):\n%s", diff)
				}
				if tt.want.err != nil && !errors.Is(e, tt.want.err) {
					t.Errorf("error %v does not wrap %v", e, tt.want.err)
				}
				if !strings.Contains(e.Detail, tt.want.detail) {
					t.Errorf("Detail = %q, want it to contain %q", e.Detail, tt.want.detail)
				}
				for _, tok := range []string{ts.RefreshToken, ts.AccessToken, ts.IDToken} {
					if strings.Contains(e.Error(), tok) {
						t.Errorf("error %q contains a token", e)
					}
				}
			}
			if gotIDErr := g.IDTokenErr != nil; gotIDErr != tt.want.idErr {
				t.Errorf("IDTokenErr = %v, want set: %v", g.IDTokenErr, tt.want.idErr)
			}
			if tt.want.idErr && g.RefreshToken.IsZero() {
				t.Error("a response with a bad id token lost the rotated refresh token")
			}
			if n := s.PendingFaults(); n != 0 {
				t.Errorf("%d faults still pending, want 0", n)
			}

			// Whether the fault spent the token shows in a second attempt.
			_, again := redeem(newClient(t, p), ts.RefreshToken)
			if consumed := again != nil; consumed != tt.want.consumed {
				t.Errorf("token consumed by the fault: %v, want %v (second attempt: %v)",
					consumed, tt.want.consumed, again)
			}
		})
	}
}

func TestFaultsApplyInOrder(t *testing.T) {
	s := NewServer()
	defer s.Close()
	c := newClient(t, s.CodexProfile())
	rt := s.Issue(alice).RefreshToken

	s.Inject(Status(500), Status(502), RateLimited("1"))
	var statuses []int
	for range 4 {
		g, e := redeem(c, rt)
		if e != nil {
			statuses = append(statuses, e.Status)
			continue
		}
		statuses = append(statuses, 200)
		rt = g.RefreshToken.Reveal()
	}
	if diff := cmp.Diff([]int{500, 502, 429, 200}, statuses); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if want := (Stats{Requests: 4, Redemptions: 1, MaxInFlight: 1}); s.Stats() != want {
		t.Errorf("stats = %+v, want %+v", s.Stats(), want)
	}
}

// Many processes holding copies of one refresh token race to redeem it:
// exactly one wins, every other attempt is a detected reuse.
func TestConcurrentRedemptionOfOneToken(t *testing.T) {
	const n = 16
	s := NewServer()
	defer s.Close()
	c := newClient(t, s.CodexProfile())
	rt := s.Issue(alice).RefreshToken

	var wg sync.WaitGroup
	results := make([]*states.RefreshError, n)
	for i := range n {
		wg.Go(func() { _, results[i] = redeem(c, rt) })
	}
	wg.Wait()

	wins, reused := 0, 0
	for _, e := range results {
		switch {
		case e == nil:
			wins++
		case e.Permanent && e.Reason == states.ReasonReused:
			reused++
		default:
			t.Errorf("unexpected outcome %v", e)
		}
	}
	if wins != 1 || reused != n-1 {
		t.Errorf("wins = %d, reused = %d; want 1 and %d", wins, reused, n-1)
	}
	st := s.Stats()
	if st.Requests != n || st.Redemptions != 1 || st.ReuseAttempts != n-1 {
		t.Errorf("stats = %+v", st)
	}
	if st.MaxInFlight < 1 || st.MaxInFlight > n {
		t.Errorf("MaxInFlight = %d, want between 1 and %d", st.MaxInFlight, n)
	}
}

// Requests held by a delay overlap, and MaxInFlight sees it.
func TestMaxInFlight(t *testing.T) {
	const n = 6
	s := NewServer()
	defer s.Close()
	c := newClient(t, s.CodexProfile())
	tokens := make([]string, n)
	faults := make([]Fault, n)
	for i := range n {
		tokens[i] = s.Issue(alice).RefreshToken
		faults[i] = Delay(300 * time.Millisecond)
	}
	s.Inject(faults...)

	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, e := redeem(c, tokens[i]); e != nil {
				t.Errorf("redemption %d: %v", i, e)
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.MaxInFlight < 2 || st.MaxInFlight > n {
		t.Errorf("MaxInFlight = %d, want overlap (2..%d)", st.MaxInFlight, n)
	}
	if st.Redemptions != n {
		t.Errorf("Redemptions = %d, want %d", st.Redemptions, n)
	}
}

// Close ends requests that a fault holds, instead of waiting for them.
func TestCloseEndsHeldRequests(t *testing.T) {
	s := NewServer()
	c := newClient(t, s.CodexProfile(), oauth.WithTimeout(time.Minute))
	rt := s.Issue(alice).RefreshToken
	s.Inject(Hang())

	done := make(chan *states.RefreshError)
	go func() { _, e := redeem(c, rt); done <- e }()
	for s.Stats().Requests == 0 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a hanging request")
	}
	if e := <-done; e == nil || e.Permanent {
		t.Errorf("held request ended with %v, want a transient failure", e)
	}
	s.Close() // a second Close is harmless
}

func TestClientAuthentication(t *testing.T) {
	const id, secret = "cli-7", "s3cr3t"
	tests := []struct {
		name       string
		profile    oauth.Profile
		wantReason states.Reason // ReasonNone: success
	}{
		{"basic", rfc(id, secret), states.ReasonNone},
		{"body", withStyle(rfc(id, secret), oauth.AuthInBody), states.ReasonNone},
		{"wrong secret", rfc(id, "nope"), states.ReasonClientRejected},
		{"no secret", rfc(id, ""), states.ReasonClientRejected},
		{"wrong id", rfc("cli-8", secret), states.ReasonClientRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer(WithClient(id, secret))
			defer s.Close()
			p := tt.profile
			p.TokenURL = s.TokenURL
			_, e := redeem(newClient(t, p), s.Issue(alice).RefreshToken)
			switch {
			case tt.wantReason == states.ReasonNone && e != nil:
				t.Fatalf("redemption failed: %v", e)
			case tt.wantReason != states.ReasonNone && (e == nil || e.Reason != tt.wantReason):
				t.Fatalf("got %v, want permanent %v", e, tt.wantReason)
			}
		})
	}
}

const formType = "application/x-www-form-urlencoded"

func rfc(id, secret string) oauth.Profile {
	return oauth.RFC6749Profile("", id, states.NewSecret(secret))
}

func withStyle(p oauth.Profile, s oauth.AuthStyle) oauth.Profile {
	p.AuthStyle = s
	return p
}

// Requests the server refuses before looking at any token.
func TestMalformedRequests(t *testing.T) {
	s := NewServer(WithClient("cli", "pw"))
	defer s.Close()
	rt := s.Issue(alice).RefreshToken

	form := func(v url.Values) string { return v.Encode() }
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		basic       bool
		wantStatus  int
		wantBody    string
	}{
		{"wrong path", "POST", "/token", formType, "", false, 404, "not_found"},
		{"GET", "GET", TokenPath, "", "", false, 405, "invalid_request"},
		{"credentials twice", "POST", TokenPath, formType,
			form(url.Values{
				"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_secret": {"pw"},
			}),
			true, 400, "invalid_request"},
		{"wrong grant type", "POST", TokenPath, formType,
			form(url.Values{"grant_type": {"password"}, "refresh_token": {rt}}),
			true, 400, "unsupported_grant_type"},
		{"no refresh token", "POST", TokenPath, formType,
			form(url.Values{"grant_type": {"refresh_token"}}), true, 400, "invalid_request"},
		{"JSON that is not an object", "POST", TokenPath, "application/json", `[1,2]`,
			true, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, s.URL+tt.path, strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.basic {
				req.SetBasicAuth("cli", "pw")
			}
			resp, err := s.HTTPClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(b), tt.wantBody) {
				t.Errorf("got %d %s, want %d with %q", resp.StatusCode, b, tt.wantStatus, tt.wantBody)
			}
		})
	}
	if st := s.Stats(); st.Redemptions != 0 {
		t.Errorf("Redemptions = %d, want 0", st.Redemptions)
	}
}

// A server fixed to one dialect refuses the other encoding.
func TestFixedDialect(t *testing.T) {
	s := NewServer(WithDialect(DialectCodex))
	defer s.Close()
	rt := s.Issue(alice).RefreshToken
	_, e := redeem(newClient(t, s.RFC6749Profile()), rt)
	if e == nil || e.Permanent || e.Status != 400 {
		t.Fatalf("form request to a Codex-only server: %v, want transient 400", e)
	}
	if _, e := redeem(newClient(t, s.CodexProfile()), rt); e != nil {
		t.Fatalf("JSON request to a Codex-only server: %v", e)
	}
}
