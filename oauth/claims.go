package oauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/credfsm/credfsm/states"
)

// ErrMalformedToken is wrapped by every error about a token that cannot be
// parsed as a JWT. The error text describes the problem, never the token.
var ErrMalformedToken = errors.New("oauth: malformed JWT")

// Claim namespaces in OpenAI's tokens.
const (
	authNamespace    = "https://api.openai.com/auth"
	profileNamespace = "https://api.openai.com/profile"
)

// idTokenClaims is the part of an id token's payload credfsm reads. Only
// these fields are decoded, so an odd value in a claim credfsm does not use
// (an audience of an unexpected shape, say) cannot make the token unusable.
// A field read here with the wrong JSON type fails the whole token, as it
// does in Codex.
type idTokenClaims struct {
	Email   *string `json:"email"`
	Profile *struct {
		Email string `json:"email"`
	} `json:"https://api.openai.com/profile"`
	Auth *struct {
		PlanType  *string `json:"chatgpt_plan_type"`
		UserID    string  `json:"chatgpt_user_id"`
		LegacyUID string  `json:"user_id"`
		AccountID string  `json:"chatgpt_account_id"`
	} `json:"https://api.openai.com/auth"`
}

// ParseIDToken reads the claims credfsm uses from an id token: the email
// (top-level, else from the https://api.openai.com/profile object), and from
// the https://api.openai.com/auth object the plan type, the user id
// (chatgpt_user_id, else user_id) and the account id (chatgpt_account_id). A
// token without that object parses to claims without them; an unknown plan is
// kept as it came.
//
// The signature is not verified. The token reached us from the provider's
// token endpoint over TLS (or from a store only this user can read), and
// credfsm uses the claims for display, account matching and restrictions,
// never to grant access; the provider checks the tokens it receives.
//
// Like Codex, the first three dot-separated segments must be present and
// non-empty; further segments are ignored, and only the payload is decoded.
// The payload may be base64url with or without padding.
func ParseIDToken(raw string) (states.Claims, error) {
	var c idTokenClaims
	if err := decodePayload(raw, &c); err != nil {
		return states.Claims{}, err
	}

	var out states.Claims
	if c.Email != nil {
		out.Email = *c.Email
	}
	if out.Email == "" && c.Profile != nil {
		out.Email = c.Profile.Email
	}
	if c.Auth != nil {
		if c.Auth.PlanType != nil {
			out.Plan = states.Plan(*c.Auth.PlanType)
		}
		out.UserID = c.Auth.UserID
		if out.UserID == "" {
			out.UserID = c.Auth.LegacyUID
		}
		out.AccountID = c.Auth.AccountID
	}
	return out, nil
}

// maxUnixTime is the last second of year 9999. A later exp is not a date a
// provider means; it is treated as no expiry at all.
const maxUnixTime = 253402300799

// AccessTokenExpiry returns the exp claim of an access token that is a JWT.
// An opaque access token, a JWT without exp, or an exp that is not a number
// of seconds from 1 (the first second after the epoch) to the end of 9999
// reports ok == false: the expiry is then unknown, which is not an error.
func AccessTokenExpiry(raw string) (exp time.Time, ok bool) {
	var c struct {
		Exp json.RawMessage `json:"exp"`
	}
	if err := decodePayload(raw, &c); err != nil {
		return time.Time{}, false
	}
	// A NumericDate is a JSON number, possibly with a fraction; a string
	// is not one, even if it holds digits.
	// https://www.rfc-editor.org/rfc/rfc7519#section-2
	var n json.Number
	if len(c.Exp) == 0 || c.Exp[0] == '"' || json.Unmarshal(c.Exp, &n) != nil {
		return time.Time{}, false
	}
	secs, err := n.Float64()
	if err != nil || math.IsNaN(secs) || secs < 1 || secs > maxUnixTime {
		return time.Time{}, false
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)).UTC(), true
}

// decodePayload decodes the payload segment of a JWT into v.
func decodePayload(raw string, v any) error {
	parts := strings.SplitN(raw, ".", 4)
	if len(parts) < 3 {
		return fmt.Errorf("%w: %d segment(s), want at least 3", ErrMalformedToken, len(parts))
	}
	for i, p := range parts[:3] {
		if p == "" {
			return fmt.Errorf("%w: segment %d is empty", ErrMalformedToken, i+1)
		}
	}

	enc := base64.RawURLEncoding
	if strings.HasSuffix(parts[1], "=") {
		enc = base64.URLEncoding
	}
	payload, err := enc.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("%w: payload is not base64url", ErrMalformedToken)
	}

	// A payload must be a JSON object; "null" would otherwise decode into
	// empty claims as if nothing were wrong.
	if t := bytes.TrimLeft(payload, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("%w: payload is not a JSON object", ErrMalformedToken)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s", ErrMalformedToken, describeJSONError(err))
	}
	return nil
}

// describeJSONError turns a json error into text that cannot echo the token.
// Messages of encoding/json may quote bytes of the decoded payload, so only
// their kind and position are kept.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ):
		return fmt.Sprintf("claim %q has the wrong JSON type (%s, want %s)",
			typ.Field, typ.Value, typ.Type)
	case errors.As(err, &syn):
		return fmt.Sprintf("payload is not valid JSON (offset %d)", syn.Offset)
	}
	return "payload is not valid JSON"
}
