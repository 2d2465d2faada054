package oauth

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/states"
)

// Tokens used across the classification tests. sentToken is what the client
// redeemed; the others come back in responses. None may appear in an error.
const sentToken = "rt_sent_9f8e7d6c5b4a3210"

// testClientSecret looks like a word, so only exact redaction can catch it.
const testClientSecret = "hunter-two-hunter"

var (
	testNow     = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	accessExp   = testNow.Add(time.Hour)
	testAccess  = jwtFromJSON(`{"sub":"user-1","exp":` + strconv.FormatInt(accessExp.Unix(), 10) + `}`)
	testIDToken = jwtFromJSON(`{"email":"dev@example.com","https://api.openai.com/auth":{` +
		`"chatgpt_plan_type":"plus","chatgpt_user_id":"user-1","chatgpt_account_id":"acct-1"}}`)
	testNewRT    = "rt_new_0011223344556677"
	opaqueAccess = "at_opaque_0123456789"
	wantClaims   = states.Claims{
		Email: "dev@example.com", Plan: states.PlanPlus, UserID: "user-1", AccountID: "acct-1",
	}
)

// outcome is the comparable part of a classification.
type outcome struct {
	Class      string // "success", "transient" or "permanent"
	Reason     states.Reason
	Status     int
	Code       string
	RetryAfter time.Duration
}

func outcomeOf(g states.Grant, e *states.RefreshError) outcome {
	switch {
	case e == nil:
		return outcome{Class: "success"}
	case e.Permanent:
		return outcome{"permanent", e.Reason, e.Status, e.Code, e.RetryAfter}
	default:
		return outcome{"transient", e.Reason, e.Status, e.Code, e.RetryAfter}
	}
}

func newTestClassifier() *classifier {
	p := CodexProfile()
	return &classifier{
		codes:        p.codeTable(),
		now:          func() time.Time { return testNow },
		clientSecret: testClientSecret,
	}
}

func TestClassifyFailures(t *testing.T) {
	htmlPage := "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	perm := func(status int, code string, r states.Reason) outcome {
		return outcome{Class: "permanent", Reason: r, Status: status, Code: code}
	}
	trans := func(status int, code string) outcome {
		return outcome{Class: "transient", Status: status, Code: code}
	}

	tests := []struct {
		name    string
		status  int
		header  http.Header
		body    string
		overCap bool
		want    outcome
		wantErr error  // a sentinel the error must wrap, if any
		detail  string // a substring Detail must contain, if any
	}{
		// Codex codes, wherever they appear, on any status.
		{name: "401/codex reused", status: 401,
			body: `{"error":{"message":"Your refresh token has already been used.",` +
				`"type":"invalid_request_error","param":null,"code":"refresh_token_reused"}}`,
			want: perm(401, "refresh_token_reused", states.ReasonReused), detail: "already been used"},
		{name: "401/codex expired", status: 401, body: `{"error":{"code":"refresh_token_expired"}}`,
			want: perm(401, "refresh_token_expired", states.ReasonExpired)},
		{name: "401/codex invalidated", status: 401, body: `{"error":{"code":"refresh_token_invalidated"}}`,
			want: perm(401, "refresh_token_invalidated", states.ReasonRevoked)},
		{name: "400/codex expired on another status", status: 400, body: `{"error":{"code":"refresh_token_expired"}}`,
			want: perm(400, "refresh_token_expired", states.ReasonExpired)},
		{name: "403/codex reused", status: 403, body: `{"error":{"code":"refresh_token_reused"}}`,
			want: perm(403, "refresh_token_reused", states.ReasonReused)},
		{name: "500/codex invalidated", status: 500, body: `{"error":{"code":"refresh_token_invalidated"}}`,
			want: perm(500, "refresh_token_invalidated", states.ReasonRevoked)},
		{name: "401/code in upper case", status: 401, body: `{"error":{"code":"REFRESH_TOKEN_EXPIRED"}}`,
			want: perm(401, "REFRESH_TOKEN_EXPIRED", states.ReasonExpired)},
		{name: "401/code as a string error", status: 401, body: `{"error":"refresh_token_expired"}`,
			want: perm(401, "refresh_token_expired", states.ReasonExpired)},
		{name: "400/top-level code", status: 400, body: `{"code":"refresh_token_reused","message":"used"}`,
			want: perm(400, "refresh_token_reused", states.ReasonReused), detail: "used"},
		{name: "400/error object without code falls back to top-level code", status: 400,
			body: `{"error":{"message":"x","code":null},"code":"refresh_token_invalidated"}`,
			want: perm(400, "refresh_token_invalidated", states.ReasonRevoked)},

		// RFC 6749 codes.
		{name: "400/invalid_grant", status: 400,
			body: `{"error":"invalid_grant","error_description":"The refresh token is invalid."}`,
			want: perm(400, "invalid_grant", states.ReasonInvalidGrant), detail: "The refresh token is invalid."},
		{name: "401/invalid_client", status: 401, body: `{"error":"invalid_client"}`,
			want: perm(401, "invalid_client", states.ReasonClientRejected)},
		{name: "400/unauthorized_client", status: 400, body: `{"error":"unauthorized_client"}`,
			want: perm(400, "unauthorized_client", states.ReasonClientRejected)},
		{name: "200/error code without tokens", status: 200, body: `{"error":"invalid_grant"}`,
			want: perm(200, "invalid_grant", states.ReasonInvalidGrant)},

		// Any other 401 is permanent for an unknown reason.
		{name: "401/unknown code", status: 401, body: `{"error":{"code":"token_expired"}}`,
			want: perm(401, "token_expired", states.ReasonUnknown)},
		{name: "401/empty body", status: 401, body: "",
			want: perm(401, "", states.ReasonUnknown), detail: "empty body"},
		{name: "401/HTML", status: 401, body: htmlPage,
			want: perm(401, "", states.ReasonUnknown), detail: "HTML page"},
		{name: "401/over the cap", status: 401, body: `{"error":`, overCap: true,
			want: perm(401, "", states.ReasonUnknown)},

		// Everything else is transient.
		{name: "400/invalid_request", status: 400, body: `{"error":"invalid_request"}`,
			want: trans(400, "invalid_request")},
		{name: "400/invalid_scope", status: 400, body: `{"error":"invalid_scope"}`,
			want: trans(400, "invalid_scope")},
		{name: "403/empty", status: 403, want: trans(403, ""), detail: "empty body"},
		{name: "404/text", status: 404, body: "not found", want: trans(404, ""), detail: "not found"},
		{name: "408/empty", status: 408, want: trans(408, "")},
		{name: "429/retry after seconds", status: 429, header: hdr("Retry-After", "30"),
			want: outcome{Class: "transient", Status: 429, RetryAfter: 30 * time.Second}},
		{name: "429/retry after date", status: 429,
			header: hdr("Retry-After", testNow.Add(2*time.Minute).Format(http.TimeFormat)),
			want:   outcome{Class: "transient", Status: 429, RetryAfter: 2 * time.Minute}},
		{name: "429/no retry after", status: 429, want: trans(429, "")},
		{name: "503/retry after", status: 503, header: hdr("Retry-After", "5"),
			want: outcome{Class: "transient", Status: 503, RetryAfter: 5 * time.Second}},
		{name: "500/JSON", status: 500, body: `{"error":{"message":"boom","code":"server_error"}}`,
			want: trans(500, "server_error"), detail: "boom"},
		{name: "502/HTML", status: 502, header: hdr("Content-Type", "text/html"), body: htmlPage,
			want: trans(502, ""), detail: "HTML page: 502 Bad Gateway nginx"},
		{name: "500/non-UTF-8", status: 500, body: "oops \xff\xfe\xfd", want: trans(500, ""),
			detail: "oops \uFFFD"},
		{name: "302/redirect", status: 302, header: hdr("Location", "https://elsewhere.example/"),
			want: trans(302, ""), wantErr: ErrRedirect},

		// A success status that is not a usable answer.
		{name: "200/not JSON", status: 200, body: "ok", want: trans(200, ""), wantErr: ErrNotJSON},
		{name: "200/HTML", status: 200, body: htmlPage, want: trans(200, ""), wantErr: ErrNotJSON,
			detail: "HTML page"},
		{name: "200/empty", status: 200, want: trans(200, ""), wantErr: ErrNotJSON, detail: "empty body"},
		{name: "200/JSON array", status: 200, body: `[{"access_token":"a"}]`, want: trans(200, ""),
			wantErr: ErrNotJSON},
		{name: "200/truncated JSON", status: 200, body: `{"access_token":"abc`, want: trans(200, ""),
			wantErr: ErrNotJSON},
		{name: "200/over the cap", status: 200, body: `{"access_token":"abc","pad":"xxx`, overCap: true,
			want: trans(200, ""), wantErr: ErrBodyTooLarge},
		{name: "200/no access token", status: 200, body: `{"refresh_token":"` + testNewRT + `"}`,
			want: trans(200, ""), wantErr: ErrNoAccessToken},
		{name: "200/access token not a string", status: 200, body: `{"access_token":42}`,
			want: trans(200, ""), wantErr: ErrNoAccessToken},
		{name: "200/empty object", status: 200, body: `{}`, want: trans(200, ""), wantErr: ErrNoAccessToken},

		// Provider text that carries tokens is redacted.
		{name: "400/description echoes the sent token", status: 400,
			body: `{"error":"invalid_request","error_description":"token ` + sentToken + ` is malformed"}`,
			want: trans(400, "invalid_request"), detail: "token [REDACTED] is malformed"},
		{name: "500/body carries response tokens", status: 500,
			body: `{"access_token":"` + testAccess + `","id_token":"` + testIDToken + `"}`,
			want: trans(500, "")},
		{name: "401/code is the sent token", status: 401, body: `{"error":{"code":"` + sentToken + `"}}`,
			want: perm(401, "(unprintable)", states.ReasonUnknown)},
		{name: "500/text with a JWT", status: 500, body: "failed for " + testAccess,
			want: trans(500, ""), detail: "failed for [REDACTED]"},
		{name: "401/description echoes the client secret", status: 401,
			body:   `{"error":"invalid_client","error_description":"wrong secret ` + testClientSecret + `"}`,
			want:   perm(401, "invalid_client", states.ReasonClientRejected),
			detail: "wrong secret [REDACTED]"},
	}

	c := newTestClassifier()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := tt.header
			if header == nil {
				header = http.Header{}
			}
			r := response{status: tt.status, header: header, body: []byte(tt.body), overCap: tt.overCap}
			g, e := c.classify(r, sentToken)
			if diff := cmp.Diff(tt.want, outcomeOf(g, e)); diff != "" {
				t.Errorf("outcome mismatch (-want +got):\n%s", diff)
			}
			if e == nil {
				return
			}
			if tt.wantErr != nil && !errors.Is(e, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", e, tt.wantErr)
			}
			if !strings.Contains(e.Detail, tt.detail) {
				t.Errorf("Detail = %q, want it to contain %q", e.Detail, tt.detail)
			}
			if len(e.Detail) > DetailLimit {
				t.Errorf("Detail is %d bytes, want <= %d", len(e.Detail), DetailLimit)
			}
			assertNoTokens(t, e.Error(), sentToken, testAccess, testIDToken, testNewRT, testClientSecret)
		})
	}
}

func assertNoTokens(t *testing.T, msg string, tokens ...string) {
	t.Helper()
	for _, tok := range tokens {
		if strings.Contains(msg, tok) {
			t.Errorf("message %q contains token %q", msg, tok)
		}
	}
}

func TestClassifySuccess(t *testing.T) {
	full := `{"id_token":"` + testIDToken + `","access_token":"` + testAccess +
		`","refresh_token":"` + testNewRT + `"}`
	tests := []struct {
		name      string
		body      string
		want      states.Grant
		wantIDErr bool
	}{
		{
			name: "all three tokens, expiry from the access token's exp",
			body: full,
			want: states.Grant{
				IDToken: states.NewSecret(testIDToken), AccessToken: states.NewSecret(testAccess),
				RefreshToken: states.NewSecret(testNewRT), Claims: wantClaims, AccessExpiry: accessExp,
			},
		},
		{
			name: "expires_in wins over exp",
			body: `{"access_token":"` + testAccess + `","expires_in":600}`,
			want: states.Grant{
				AccessToken: states.NewSecret(testAccess), AccessExpiry: testNow.Add(10 * time.Minute),
			},
		},
		{
			name: "expires_in as a string",
			body: `{"access_token":"` + opaqueAccess + `","expires_in":"3600"}`,
			want: states.Grant{
				AccessToken: states.NewSecret(opaqueAccess), AccessExpiry: testNow.Add(time.Hour),
			},
		},
		{
			name: "expires_in zero falls back to exp",
			body: `{"access_token":"` + testAccess + `","expires_in":0}`,
			want: states.Grant{AccessToken: states.NewSecret(testAccess), AccessExpiry: accessExp},
		},
		{
			name: "expires_in absurd falls back to exp",
			body: `{"access_token":"` + testAccess + `","expires_in":1e30}`,
			want: states.Grant{AccessToken: states.NewSecret(testAccess), AccessExpiry: accessExp},
		},
		{
			name: "opaque access token without expires_in: expiry unknown",
			body: `{"access_token":"` + opaqueAccess + `","token_type":"Bearer"}`,
			want: states.Grant{AccessToken: states.NewSecret(opaqueAccess)},
		},
		{
			name: "access token only: the provider did not rotate",
			body: `{"access_token":"` + testAccess + `"}`,
			want: states.Grant{AccessToken: states.NewSecret(testAccess), AccessExpiry: accessExp},
		},
		{
			name: "unparsable id token still yields the rotated refresh token",
			body: `{"id_token":"not-a-jwt","access_token":"` + testAccess +
				`","refresh_token":"` + testNewRT + `"}`,
			want: states.Grant{
				IDToken: states.NewSecret("not-a-jwt"), AccessToken: states.NewSecret(testAccess),
				RefreshToken: states.NewSecret(testNewRT), AccessExpiry: accessExp,
			},
			wantIDErr: true,
		},
		{
			name: "error field next to an access token is ignored",
			body: `{"access_token":"` + opaqueAccess + `","error":"invalid_grant"}`,
			want: states.Grant{AccessToken: states.NewSecret(opaqueAccess)},
		},
		{
			name: "null fields are absent",
			body: `{"access_token":"` + opaqueAccess + `","refresh_token":null,"id_token":null}`,
			want: states.Grant{AccessToken: states.NewSecret(opaqueAccess)},
		},
	}
	c := newTestClassifier()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, status := range []int{200, 201} {
				r := response{status: status, header: http.Header{}, body: []byte(tt.body)}
				g, e := c.classify(r, sentToken)
				if e != nil {
					t.Fatalf("status %d: classify failed: %v", status, e)
				}
				if gotErr := g.IDTokenErr != nil; gotErr != tt.wantIDErr {
					t.Errorf("IDTokenErr = %v, want set: %v", g.IDTokenErr, tt.wantIDErr)
				}
				if g.IDTokenErr != nil {
					if !errors.Is(g.IDTokenErr, ErrMalformedToken) {
						t.Errorf("IDTokenErr %v does not wrap ErrMalformedToken", g.IDTokenErr)
					}
					assertNoTokens(t, g.IDTokenErr.Error(), sentToken, testAccess, testNewRT, "not-a-jwt")
				}
				g.IDTokenErr = nil
				if diff := cmp.Diff(tt.want, g); diff != "" {
					t.Errorf("status %d: grant mismatch (-want +got):\n%s", status, diff)
				}
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"120", 2 * time.Minute},
		{" 7 ", 7 * time.Second},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999999999999", maxRetryAfter},
		{"86401", maxRetryAfter},
		{testNow.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{testNow.Add(-time.Hour).Format(http.TimeFormat), 0},
		{testNow.Add(48 * time.Hour).Format(http.TimeFormat), maxRetryAfter},
		// RFC 850 and asctime dates are obsolete but still valid HTTP-dates.
		{testNow.Add(time.Minute).Format(time.RFC850), time.Minute},
		{testNow.Add(time.Minute).Format(time.ANSIC), time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := retryAfter(tt.in, testNow); got != tt.want {
				t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
