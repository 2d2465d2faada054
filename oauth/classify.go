package oauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/credfsm/credfsm/states"
)

// MaxBodySize is the most bytes of a token endpoint's response that are
// read. A token response is a few kilobytes; anything near this size is a
// misbehaving proxy or server, and reading it whole would let it exhaust
// memory.
const MaxBodySize = 1 << 20

// maxExpiresIn bounds a believable expires_in (ten years). A larger value is
// ignored, which also keeps the arithmetic below from overflowing.
const maxExpiresIn = 10 * 365 * 24 * 60 * 60

// maxRetryAfter bounds the Retry-After hint. A provider asking for a longer
// pause is treated as asking for a day; the state machine decides what to do
// with the hint.
const maxRetryAfter = 24 * time.Hour

// maxCodeLen bounds the error code kept in a RefreshError; real codes are
// short identifiers.
const maxCodeLen = 64

// response is what came back from the token endpoint, as far as it was read.
type response struct {
	status  int
	header  http.Header
	body    []byte
	overCap bool // the body was longer than MaxBodySize and was cut
}

// classifier turns a response into exactly one of: a grant (success), a
// transient *states.RefreshError, or a permanent one with a reason.
type classifier struct {
	codes map[string]states.Reason // lower-cased code -> permanent reason
	now   func() time.Time

	// clientSecret is redacted from provider text like the tokens are: a
	// provider that refuses a client may quote what it was sent.
	clientSecret string
}

// classify decides what a response means. sent is the refresh token that was
// redeemed; neither it nor any token in the response may appear in an error.
//
// The order of the checks is the contract:
//
//  1. A 2xx carrying an access token is a success, even when its id token
//     cannot be parsed: the refresh token it may carry has already replaced
//     the one sent, and dropping it would lose the credential.
//  2. An error code found in the profile's table is permanent, whatever the
//     status: providers disagree on statuses but not on codes.
//  3. A 401 without a known code is permanent for an unknown reason: the
//     endpoint refused the credential and did not say why.
//  4. Everything else may pass on its own and is transient: 408, 429, 5xx,
//     other 4xx, redirects, a 2xx without tokens or without JSON.
func (c *classifier) classify(r response, sent string) (states.Grant, *states.RefreshError) {
	obj := parseObject(r.body)
	secrets := append(responseTokens(obj), sent, c.clientSecret)
	ok := r.status >= 200 && r.status < 300

	if ok && obj != nil {
		if g, found := c.grant(obj); found {
			return g, nil
		}
		// TODO: a 2xx with a refresh token but no access token is treated
		// as a failure, and the rotated refresh token in it is lost.
		// states.RefreshError has no field to carry it to the runner; no
		// provider is known to answer this way.
	}

	rawCode := extractCode(obj)
	e := &states.RefreshError{
		Status: r.status,
		Code:   sanitizeCode(rawCode, secrets),
		Detail: describe(r, obj, secrets),
	}
	if reason, known := c.codes[strings.ToLower(rawCode)]; known {
		e.Permanent, e.Reason = true, reason
		return states.Grant{}, e
	}

	switch {
	case ok && obj == nil && r.overCap:
		e.Err = ErrBodyTooLarge
	case ok && obj == nil:
		e.Err = ErrNotJSON
	case ok:
		e.Err = ErrNoAccessToken
	case r.status == http.StatusUnauthorized:
		// https://www.rfc-editor.org/rfc/rfc6749#section-5.2 lets a server
		// answer 401 only for a failed client authentication; OpenAI's
		// endpoint answers 401 for a refused refresh token. Either way,
		// asking again with the same request cannot help.
		e.Permanent, e.Reason = true, states.ReasonUnknown
		return states.Grant{}, e
	case r.status >= 300 && r.status < 400:
		e.Err = ErrRedirect
	}
	e.RetryAfter = retryAfter(r.header.Get("Retry-After"), c.now())
	return states.Grant{}, e
}

// grant builds a Grant from a 2xx JSON body and reports whether the body
// held an access token.
//
// https://www.rfc-editor.org/rfc/rfc6749#section-5.1: access_token is
// REQUIRED, expires_in is RECOMMENDED, refresh_token is OPTIONAL. Codex's
// endpoint may omit any of its three fields; a field left out keeps the
// stored value.
func (c *classifier) grant(obj map[string]json.RawMessage) (states.Grant, bool) {
	access := stringField(obj, "access_token")
	if access == "" {
		return states.Grant{}, false
	}
	g := states.Grant{
		AccessToken:  states.NewSecret(access),
		RefreshToken: states.NewSecret(stringField(obj, "refresh_token")),
	}
	if id := stringField(obj, "id_token"); id != "" {
		g.IDToken = states.NewSecret(id)
		claims, err := ParseIDToken(id)
		if err != nil {
			g.IDTokenErr = fmt.Errorf("oauth: the id token in the refresh response is unusable: %w", err)
		} else {
			g.Claims = claims
		}
	}

	// expires_in is relative to when the response was issued; the clock is
	// read now, after the round trip, so the expiry errs on the early side.
	if secs, ok := expiresIn(obj["expires_in"]); ok {
		g.AccessExpiry = c.now().Add(time.Duration(secs * float64(time.Second)))
	} else if exp, ok := AccessTokenExpiry(access); ok {
		g.AccessExpiry = exp
	}
	return g, true
}

// parseObject returns the body's members when it is a JSON object, else nil.
func parseObject(body []byte) map[string]json.RawMessage {
	t := bytes.TrimSpace(body)
	if len(t) == 0 || t[0] != '{' {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(t, &obj); err != nil || obj == nil {
		return nil
	}
	return obj
}

// stringField returns obj[key] when it is a JSON string, else "". A token of
// another type is treated as absent: it could not be sent back anyway.
func stringField(obj map[string]json.RawMessage, key string) string {
	var s string
	if err := json.Unmarshal(obj[key], &s); err != nil {
		return ""
	}
	return s
}

// expiresIn reads expires_in as a positive number of seconds. Some providers
// send it as a string, which is accepted too. Zero is treated as absent, as
// golang.org/x/oauth2 does: it says nothing useful about the token.
func expiresIn(raw json.RawMessage) (float64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		n = json.Number(strings.TrimSpace(s))
	}
	secs, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(secs) || secs <= 0 || secs > maxExpiresIn {
		return 0, false
	}
	return secs, true
}

// responseTokens returns the token values in a response body, so that they
// can be kept out of error messages.
func responseTokens(obj map[string]json.RawMessage) []string {
	var out []string
	for _, k := range []string{"access_token", "refresh_token", "id_token"} {
		if v := stringField(obj, k); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// extractCode finds the provider's error code, as Codex does: error.code when
// error is an object, else error when it is a string (the RFC 6749 shape),
// else a top-level code.
//
// https://www.rfc-editor.org/rfc/rfc6749#section-5.2: "error: REQUIRED. A
// single ASCII error code".
func extractCode(obj map[string]json.RawMessage) string {
	if obj == nil {
		return ""
	}
	var nested struct {
		Code *string `json:"code"`
	}
	if err := json.Unmarshal(obj["error"], &nested); err == nil && nested.Code != nil {
		return *nested.Code
	}
	if s := stringField(obj, "error"); s != "" {
		return s
	}
	return stringField(obj, "code")
}

// extractMessage finds the provider's human-readable explanation: Codex's
// error.message, RFC 6749's error_description, or a top-level message.
func extractMessage(obj map[string]json.RawMessage) string {
	var nested struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(obj["error"], &nested); err == nil && nested.Message != "" {
		return nested.Message
	}
	if s := stringField(obj, "error_description"); s != "" {
		return s
	}
	return stringField(obj, "message")
}

var plainCode = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// sanitizeCode keeps a code fit for an error message: a short identifier
// that is not one of the secrets. Anything else is replaced, since a code is
// printed verbatim.
func sanitizeCode(code string, secrets []string) string {
	if code == "" {
		return ""
	}
	clean := Sanitize(code, secrets...)
	if clean != code || len(code) > maxCodeLen || !plainCode.MatchString(code) {
		return "(unprintable)"
	}
	return code
}

var htmlTag = regexp.MustCompile(`<[^>]*>`)

// describe says, in one sanitised line, what the provider said.
func describe(r response, obj map[string]json.RawMessage, secrets []string) string {
	if obj != nil {
		if msg := extractMessage(obj); msg != "" {
			return Sanitize(msg, secrets...)
		}
		return Sanitize(string(r.body), secrets...)
	}

	body := bytes.TrimSpace(r.body)
	if len(body) == 0 {
		return "empty body"
	}
	mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
	if mt == "text/html" || body[0] == '<' {
		// A proxy's or a captive portal's page: its text says more than
		// its markup.
		text := htmlTag.ReplaceAllString(string(body), " ")
		return Sanitize("HTML page: "+text, secrets...)
	}
	return Sanitize(string(body), secrets...)
}

// retryAfter reads a Retry-After header given in seconds or as an HTTP date.
// A malformed or past value gives zero: no hint.
//
// https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3: "Retry-After =
// HTTP-date / delay-seconds".
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// Out of range still means "a very long time".
		if err != nil || secs > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}
