package oauth_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
)

// captured is what a token endpoint saw of one request.
type captured struct {
	Method      string
	Path        string
	ContentType string
	Accept      string
	BasicUser   string
	BasicPass   string
	HasBasic    bool
	JSON        map[string]any // the body when it is JSON
	Form        url.Values     // the body when it is form-encoded
	RawBody     string
}

// recorder is a token endpoint that records requests and answers each with
// a fixed success.
type recorder struct {
	mu   sync.Mutex
	reqs []captured
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c := captured{
		Method:      r.Method,
		Path:        r.URL.RequestURI(),
		ContentType: r.Header.Get("Content-Type"),
		Accept:      r.Header.Get("Accept"),
		RawBody:     string(body),
	}
	if u, p, ok := r.BasicAuth(); ok {
		c.BasicUser, c.BasicPass, c.HasBasic = u, p, true
	}
	switch c.ContentType {
	case "application/json":
		_ = json.Unmarshal(body, &c.JSON)
	case "application/x-www-form-urlencoded":
		c.Form, _ = url.ParseQuery(string(body))
	}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, c)
	rec.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"access_token":"at","token_type":"Bearer","expires_in":60}`)
}

func (rec *recorder) only(t *testing.T) captured {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) != 1 {
		t.Fatalf("endpoint saw %d requests, want 1", len(rec.reqs))
	}
	return rec.reqs[0]
}

func TestRequestShape(t *testing.T) {
	const rt = "rt_abc+/= &%"
	rfc := func(url string, secret string, style oauth.AuthStyle, scope string) oauth.Profile {
		p := oauth.RFC6749Profile(url, "my client:1", states.NewSecret(secret))
		p.AuthStyle = style
		p.Scope = scope
		return p
	}

	tests := []struct {
		name    string
		profile func(url string) oauth.Profile
		want    captured
	}{
		{
			name: "codex",
			profile: func(u string) oauth.Profile {
				p := oauth.CodexProfile()
				p.TokenURL = u + "/oauth/token"
				return p
			},
			want: captured{
				Method: "POST", Path: "/oauth/token", ContentType: "application/json",
				Accept: "application/json",
				JSON: map[string]any{
					"client_id":     "app_EMoamEEZ73f0CkXaXp7hrann",
					"grant_type":    "refresh_token",
					"refresh_token": rt,
					"scope":         "openid profile email",
				},
				RawBody: `{"client_id":"app_EMoamEEZ73f0CkXaXp7hrann","grant_type":"refresh_token",` +
					`"refresh_token":"rt_abc+/= \u0026%","scope":"openid profile email"}`,
			},
		},
		{
			name:    "rfc6749 public client",
			profile: func(u string) oauth.Profile { return rfc(u+"/token", "", oauth.AuthAuto, "") },
			want: captured{
				Method: "POST", Path: "/token", ContentType: "application/x-www-form-urlencoded",
				Accept: "application/json",
				Form: url.Values{
					"grant_type":    {"refresh_token"},
					"refresh_token": {rt},
					"client_id":     {"my client:1"},
				},
			},
		},
		{
			name: "rfc6749 secret with HTTP Basic (the default)",
			profile: func(u string) oauth.Profile {
				return rfc(u+"/token", "s3cr3t:&", oauth.AuthAuto, "read write")
			},
			want: captured{
				Method: "POST", Path: "/token", ContentType: "application/x-www-form-urlencoded",
				Accept: "application/json",
				// Basic credentials are form-encoded before base64
				// (RFC 6749 section 2.3.1).
				HasBasic: true, BasicUser: "my+client%3A1", BasicPass: "s3cr3t%3A%26",
				Form: url.Values{
					"grant_type":    {"refresh_token"},
					"refresh_token": {rt},
					"scope":         {"read write"},
				},
			},
		},
		{
			name:    "rfc6749 secret in the body",
			profile: func(u string) oauth.Profile { return rfc(u+"/token", "s3cr3t", oauth.AuthInBody, "") },
			want: captured{
				Method: "POST", Path: "/token", ContentType: "application/x-www-form-urlencoded",
				Accept: "application/json",
				Form: url.Values{
					"grant_type":    {"refresh_token"},
					"refresh_token": {rt},
					"client_id":     {"my client:1"},
					"client_secret": {"s3cr3t"},
				},
			},
		},
		{
			name: "JSON encoding with Basic",
			profile: func(u string) oauth.Profile {
				p := rfc(u+"/token", "pw", oauth.AuthBasic, "")
				p.Encoding = oauth.EncodeJSON
				return p
			},
			want: captured{
				Method: "POST", Path: "/token", ContentType: "application/json",
				Accept:   "application/json",
				HasBasic: true, BasicUser: "my+client%3A1", BasicPass: "pw",
				JSON: map[string]any{"grant_type": "refresh_token", "refresh_token": rt},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			srv := httptest.NewServer(rec)
			defer srv.Close()

			noEnv := oauth.WithGetenv(func(string) string { return "" })
			c, err := oauth.NewClient(tt.profile(srv.URL), noEnv)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Redeem(context.Background(), states.NewSecret(rt)); err != nil {
				t.Fatalf("Redeem: %v", err)
			}
			got := rec.only(t)
			if tt.want.RawBody == "" {
				got.RawBody = "" // form field order is not part of the contract
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("request mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// With the override variable set, the Codex profile posts to it verbatim,
// path and query included.
func TestRequestGoesToTheOverride(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()

	getenv := func(k string) string {
		if k == "CODEX_REFRESH_TOKEN_URL_OVERRIDE" {
			return srv.URL + "/mock/refresh?tenant=a"
		}
		return ""
	}
	c, err := oauth.NewClient(oauth.CodexProfile(), oauth.WithGetenv(getenv))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Redeem(context.Background(), states.NewSecret("rt")); err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	if got, want := rec.only(t).Path, "/mock/refresh?tenant=a"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
}

// An empty refresh token is refused without a request.
func TestRedeemEmptyToken(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	p := oauth.RFC6749Profile(srv.URL, "cli", states.Secret{})
	c, err := oauth.NewClient(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Redeem(context.Background(), states.Secret{})
	re := asRefreshError(t, err)
	if !re.Permanent || re.Reason != states.ReasonInvalidGrant {
		t.Errorf("got %+v, want permanent invalid_grant", re)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) != 0 {
		t.Errorf("endpoint saw %d requests, want 0", len(rec.reqs))
	}
}
