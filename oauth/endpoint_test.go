package oauth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
)

func TestCheckTokenURL(t *testing.T) {
	tests := []struct {
		url          string
		wantOK       bool
		wantInsecure bool
	}{
		{"https://auth.openai.com/oauth/token", true, false},
		{"HTTPS://auth.example.com/token", true, false},
		{"https://10.0.0.1:8443/token", true, false},
		{"http://127.0.0.1:8080/oauth/token", true, false},
		{"http://127.5.6.7/token", true, false},
		{"http://[::1]:9000/token", true, false},
		{"http://localhost:9000/token", true, false},
		{"http://LOCALHOST/token", true, false},
		{"http://[::ffff:127.0.0.1]/token", true, false},
		{"http://auth.example.com/token", false, true},
		{"http://10.0.0.1/token", false, true},
		{"http://128.0.0.1/token", false, true},
		{"http://[::2]/token", false, true},
		{"http://localhost.example.com/token", false, true},
		{"http://127.0.0.1.nip.io/token", false, true},
		{"ftp://127.0.0.1/token", false, true},
		{"/oauth/token", false, false},
		{"", false, false},
		{"https://", false, false},
		{"https://user:pass@auth.example.com/token", false, false},
		{"https://auth.example.com:notaport/token", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := oauth.CheckTokenURL(tt.url)
			if (err == nil) != tt.wantOK {
				t.Fatalf("CheckTokenURL(%q) = %v, want ok: %v", tt.url, err, tt.wantOK)
			}
			if got := errors.Is(err, oauth.ErrInsecureEndpoint); got != tt.wantInsecure {
				t.Errorf("errors.Is(err, ErrInsecureEndpoint) = %v, want %v (err: %v)",
					got, tt.wantInsecure, err)
			}
			if err != nil && strings.Contains(err.Error(), "pass") {
				t.Errorf("error %q repeats the URL's password", err)
			}
		})
	}
}

func TestNewClientChecksTheURL(t *testing.T) {
	noEnv := oauth.WithGetenv(func(string) string { return "" })
	env := func(v string) oauth.Option {
		return oauth.WithGetenv(func(k string) string {
			if k == oauth.CodexURLEnv {
				return v
			}
			return ""
		})
	}

	tests := []struct {
		name    string
		profile func() oauth.Profile
		opt     oauth.Option
		wantURL string
		wantErr error
	}{
		{
			name:    "codex default",
			profile: oauth.CodexProfile,
			opt:     noEnv,
			wantURL: "https://auth.openai.com/oauth/token",
		},
		{
			name:    "codex env override used verbatim",
			profile: oauth.CodexProfile,
			opt:     env("http://127.0.0.1:4444/custom/path?x=1"),
			wantURL: "http://127.0.0.1:4444/custom/path?x=1",
		},
		{
			name:    "codex env override must be safe too",
			profile: oauth.CodexProfile,
			opt:     env("http://evil.example.com/token"),
			wantErr: oauth.ErrInsecureEndpoint,
		},
		{
			name: "configured URL",
			profile: func() oauth.Profile {
				p := oauth.CodexProfile()
				p.TokenURL = "https://auth.internal.example/token"
				return p
			},
			opt:     noEnv,
			wantURL: "https://auth.internal.example/token",
		},
		{
			name: "env ignored when the profile names no variable",
			profile: func() oauth.Profile {
				p := oauth.CodexProfile()
				p.URLEnv = ""
				return p
			},
			opt:     env("https://elsewhere.example/token"),
			wantURL: oauth.CodexTokenURL,
		},
		{
			name: "rfc6749 plain http refused",
			profile: func() oauth.Profile {
				return oauth.RFC6749Profile("http://idp.example.com/token", "cli", states.Secret{})
			},
			opt:     noEnv,
			wantErr: oauth.ErrInsecureEndpoint,
		},
		{
			name: "rfc6749 loopback http allowed",
			profile: func() oauth.Profile {
				return oauth.RFC6749Profile("http://localhost:8080/token", "cli", states.Secret{})
			},
			opt:     noEnv,
			wantURL: "http://localhost:8080/token",
		},
		{
			name: "no client id",
			profile: func() oauth.Profile {
				return oauth.RFC6749Profile("https://idp.example.com/token", " ", states.Secret{})
			},
			opt:     noEnv,
			wantErr: oauth.ErrInvalidProfile,
		},
		{
			name: "code without a reason",
			profile: func() oauth.Profile {
				p := oauth.CodexProfile()
				p.Codes["slow_down"] = states.ReasonNone
				return p
			},
			opt:     noEnv,
			wantErr: oauth.ErrInvalidProfile,
		},
		{
			name: "unknown encoding",
			profile: func() oauth.Profile {
				p := oauth.CodexProfile()
				p.Encoding = 9
				return p
			},
			opt:     noEnv,
			wantErr: oauth.ErrInvalidProfile,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := oauth.NewClient(tt.profile(), tt.opt)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("NewClient err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			if got := c.TokenURL(); got != tt.wantURL {
				t.Errorf("TokenURL = %q, want %q", got, tt.wantURL)
			}
		})
	}
}

// The profile is copied: changing the caller's code table afterwards does
// not change the client.
func TestNewClientCopiesTheProfile(t *testing.T) {
	p := oauth.CodexProfile()
	p.URLEnv = ""
	c, err := oauth.NewClient(p)
	if err != nil {
		t.Fatal(err)
	}
	delete(p.Codes, oauth.CodeRefreshTokenReused)
	if _, ok := c.Profile().Codes[oauth.CodeRefreshTokenReused]; !ok {
		t.Errorf("client's code table changed with the caller's map")
	}
}
