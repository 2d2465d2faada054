package oauth

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	jwt := jwtFromJSON(`{"sub":"user-1","exp":1700000000}`)
	tests := []struct {
		name    string
		in      string
		secrets []string
		want    string
	}{
		{
			name: "plain message kept",
			in:   "Your refresh token has already been used to generate a new access token.",
			want: "Your refresh token has already been used to generate a new access token.",
		},
		{
			name: "error codes kept",
			in:   `{"error":"invalid_grant","error_description":"refresh_token_invalidated"}`,
			want: `{"error":"invalid_grant","error_description":"refresh_token_invalidated"}`,
		},
		{
			name:    "known secret",
			in:      "token opaque-secret-value was rejected",
			secrets: []string{"opaque-secret-value"},
			want:    "token [REDACTED] was rejected",
		},
		{
			name: "JWT",
			in:   "bad token " + jwt + " here",
			want: "bad token [REDACTED] here",
		},
		{
			name: "JSON token field",
			in:   `{"access_token":"short","id_token":"x","error":"server_error"}`,
			want: `{"access_token":"[REDACTED]","id_token":"[REDACTED]","error":"server_error"}`,
		},
		{
			name: "JSON secret-like fields",
			in:   `{"client_secret" : "hunter2", "api_key":"k", "Password":"p"}`,
			want: `{"client_secret" : "[REDACTED]", "api_key":"[REDACTED]", "Password":"[REDACTED]"}`,
		},
		{
			name: "JSON field cut short",
			in:   `{"refresh_token":"abc`,
			want: `{"refresh_token":"[REDACTED]"`,
		},
		{
			name: "form fields",
			in:   "grant_type=refresh_token&refresh_token=abc&client_secret=s3&scope=openid",
			want: "grant_type=refresh_token&refresh_token=[REDACTED]&client_secret=[REDACTED]&scope=openid",
		},
		{
			name: "bearer credentials",
			in:   "Authorization: Bearer abc.def and basic Zm9vOmJhcg==",
			want: "Authorization: Bearer [REDACTED] and basic [REDACTED]",
		},
		{
			name: "long hex run",
			in:   "id 0123456789abcdef0123456789abcdef in log",
			want: "id [REDACTED] in log",
		},
		{
			name: "long base64 run without digits",
			in:   "x AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGhIjKlMn y",
			want: "x [REDACTED] y",
		},
		{
			name: "long identifier without digits kept",
			in:   "refresh_token_invalidated_by_the_admin",
			want: "refresh_token_invalidated_by_the_admin",
		},
		{
			name: "white space and control characters collapsed",
			in:   "  line one\n\tline\x00two\r\n  ",
			want: "line one line two",
		},
		{
			name: "invalid UTF-8 replaced",
			in:   "bad \xff\xfe bytes",
			want: "bad \uFFFD bytes",
		},
		{
			name: "empty",
			in:   "",
			want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Sanitize(tt.in, tt.secrets...)
			if got != tt.want {
				t.Errorf("Sanitize(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSanitizeTruncates(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"ascii", strings.Repeat("word ", 100)},
		{"multibyte at the cut", strings.Repeat("é", 150)},
		{"beyond the scan limit", strings.Repeat("a b ", 3000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Sanitize(tt.in)
			if len(got) > DetailLimit {
				t.Errorf("len = %d, want <= %d", len(got), DetailLimit)
			}
			if !utf8.ValidString(got) {
				t.Errorf("result is not valid UTF-8: %q", got)
			}
			if !strings.HasSuffix(got, "…") {
				t.Errorf("result %q does not say it was cut", got)
			}
		})
	}
}

// A token cut in two by the scan limit leaves a prefix that no pattern
// recognises on its own; it must not survive either.
func TestSanitizeTokenAtScanLimit(t *testing.T) {
	token := "tok" + strings.Repeat("Zz9", 30)
	in := strings.Repeat(" ", scanLimit-20) + token
	got := Sanitize(in)
	if strings.Contains(got, token[:12]) {
		t.Errorf("Sanitize kept a token prefix: %q", got)
	}
}

func TestSanitizeSecretsNeverSurvive(t *testing.T) {
	secret := "rt-" + strings.Repeat("q", 10) + "-x"
	inputs := []string{
		secret,
		"before " + secret + " after",
		`{"message":"` + secret + `"}`,
		strings.Repeat("filler ", 50) + secret, // beyond the excerpt
		secret + secret,
	}
	for _, in := range inputs {
		if got := Sanitize(in, secret); strings.Contains(got, secret) {
			t.Errorf("Sanitize(%q) = %q, still holds the secret", in, got)
		}
	}
}
