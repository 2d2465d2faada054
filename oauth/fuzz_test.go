package oauth

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/credfsm/credfsm/states"
)

// tokenShaped reports whether s could be a real token: long enough not to
// occur in fixed text by chance, and made only of the characters tokens are
// made of (RFC 6750 token68 and the dot of a JWT). The no-echo properties
// below are stated for such strings; a "token" like "refresh_token_reused"
// legitimately appears in an error as the name of a reason.
func tokenShaped(s string) bool {
	if len(s) < 16 {
		return false
	}
	for _, r := range s {
		if !isTokenChar(r) && r != '~' {
			return false
		}
	}
	return true
}

// FuzzParseIDToken: the parser never panics, fails only with
// ErrMalformedToken, and never repeats the token or its payload in an error.
func FuzzParseIDToken(f *testing.F) {
	f.Add(testIDToken)
	f.Add(jwtFromJSON(`{"https://api.openai.com/auth":{"chatgpt_plan_type":7}}`))
	f.Add("a.b")
	f.Add("a.b.c.d")
	f.Add("..")
	f.Add(jwtFromJSON(`{"exp":0.5}`)) // a fraction of the first second: no date meant
	f.Fuzz(func(t *testing.T, raw string) {
		_, err := ParseIDToken(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("error %v does not wrap ErrMalformedToken", err)
			}
			msg := err.Error()
			if tokenShaped(raw) && strings.Contains(msg, raw) {
				t.Fatalf("error %q repeats the token", msg)
			}
			if parts := strings.Split(raw, "."); len(parts) > 1 && tokenShaped(parts[1]) &&
				strings.Contains(msg, parts[1]) {
				t.Fatalf("error %q repeats the payload", msg)
			}
		}

		exp, ok := AccessTokenExpiry(raw)
		if ok && (exp.Unix() <= 0 || exp.Unix() > maxUnixTime) {
			t.Fatalf("AccessTokenExpiry = %v, outside the accepted range", exp)
		}
		if !ok && !exp.IsZero() {
			t.Fatalf("AccessTokenExpiry = %v with ok == false", exp)
		}
	})
}

// FuzzClassify: any response classifies as exactly one of success,
// transient or permanent-with-a-reason, without panicking, and no text taken
// from the response (Detail, Code, an id token error) repeats the refresh
// token sent or a token the response carried.
func FuzzClassify(f *testing.F) {
	const js = "application/json"
	f.Add(401, js, "", []byte(`{"error":{"code":"refresh_token_reused"}}`), false, sentToken)
	f.Add(200, js, "", []byte(`{"access_token":"`+testAccess+`","id_token":"x.y.z"}`), false, sentToken)
	f.Add(429, "", "120", []byte(""), false, sentToken)
	f.Add(502, "text/html", "", []byte("<html>bad gateway</html>"), false, sentToken)
	f.Add(400, js, "", []byte(`{"error":"invalid_grant","error_description":"`+sentToken+`"}`),
		false, sentToken)
	f.Add(200, js, "", []byte(`{"access_token":"abc`), true, sentToken)
	f.Add(500, "", "Wed, 21 Oct 2015 07:28:00 GMT", []byte("\xff\xfe"), false, sentToken)

	c := newTestClassifier()
	f.Fuzz(func(t *testing.T,
		status int, contentType, retry string, body []byte, overCap bool, sent string,
	) {
		if status < 0 {
			status = -status
		}
		status = 100 + status%500
		h := http.Header{}
		h.Set("Content-Type", contentType)
		h.Set("Retry-After", retry)

		r := response{status: status, header: h, body: body, overCap: overCap}
		g, e := c.classify(r, sent)

		var secrets []string
		if tokenShaped(sent) {
			secrets = append(secrets, sent)
		}
		for _, tok := range responseTokens(parseObject(body)) {
			if tokenShaped(tok) {
				secrets = append(secrets, tok)
			}
		}

		if e == nil {
			if g.AccessToken.IsZero() {
				t.Fatal("success without an access token")
			}
			if status < 200 || status > 299 {
				t.Fatalf("success on HTTP %d", status)
			}
			if g.IDTokenErr != nil {
				for _, s := range secrets {
					if strings.Contains(g.IDTokenErr.Error(), s) {
						t.Fatalf("id token error %q repeats a token", g.IDTokenErr)
					}
				}
			}
			return
		}

		if !g.AccessToken.IsZero() || !g.RefreshToken.IsZero() || !g.IDToken.IsZero() {
			t.Fatal("a failure returned tokens")
		}
		if e.Permanent == (e.Reason == states.ReasonNone) {
			t.Fatalf("Permanent = %v with reason %v", e.Permanent, e.Reason)
		}
		if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
			t.Fatalf("RetryAfter = %v", e.RetryAfter)
		}
		if len(e.Detail) > DetailLimit || !utf8.ValidString(e.Detail) {
			t.Fatalf("Detail %q is too long or not UTF-8", e.Detail)
		}
		for _, s := range secrets {
			if strings.Contains(e.Detail, s) || strings.Contains(e.Code, s) {
				t.Fatalf("error %q repeats a token", e)
			}
		}
		_ = e.Error()
	})
}

// FuzzSanitize: the result is short, valid UTF-8, one line, and free of the
// secrets it was given.
func FuzzSanitize(f *testing.F) {
	f.Add("plain text", sentToken)
	f.Add(`{"refresh_token":"`+sentToken+`"}`, sentToken)
	f.Add(strings.Repeat("é", 300), "")
	f.Add("a\x00b\nc\xff", "")
	f.Fuzz(func(t *testing.T, in, secret string) {
		got := Sanitize(in, secret)
		if len(got) > DetailLimit || !utf8.ValidString(got) {
			t.Fatalf("Sanitize = %q: too long or not UTF-8", got)
		}
		if strings.ContainsFunc(got, func(r rune) bool { return unicode.IsControl(r) || r == '\n' }) {
			t.Fatalf("Sanitize = %q: not one printable line", got)
		}
		if tokenShaped(secret) && strings.Contains(got, secret) {
			t.Fatalf("Sanitize = %q: repeats the secret", got)
		}
	})
}
