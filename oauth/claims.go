package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/credfsm/credfsm/states"
)

// ErrMalformedToken is wrapped by every error about a token that cannot be
// parsed as a JWT. The error text describes the problem, never the token.
var ErrMalformedToken = errors.New("oauth: malformed JWT")

// authNamespace is the claim that holds OpenAI's account data in an id token.
const authNamespace = "https://api.openai.com/auth"

// idTokenClaims is the part of an id token's payload credfsm reads.
type idTokenClaims struct {
	Email string `json:"email"`
	Auth  *struct {
		PlanType  *string `json:"chatgpt_plan_type"`
		UserID    string  `json:"chatgpt_user_id"`
		LegacyUID string  `json:"user_id"`
		AccountID string  `json:"chatgpt_account_id"`
	} `json:"https://api.openai.com/auth"`
	jwt.RegisteredClaims
}

// parser decodes JWT segments without checking signatures. Padded and
// unpadded base64url are both accepted.
var parser = jwt.NewParser(jwt.WithPaddingAllowed(), jwt.WithoutClaimsValidation())

// ParseIDToken reads the claims credfsm uses from an id token: the top-level
// email, and from the https://api.openai.com/auth object the plan type, the
// user id (chatgpt_user_id, else user_id) and the account id
// (chatgpt_account_id). A token without that object parses to empty claims.
//
// The signature is not verified. The token reached us from the provider's
// token endpoint over TLS (or from a store only this user can read), and
// credfsm uses the claims for display, account matching and restrictions,
// never to grant access; the provider checks the tokens it receives.
//
// Like Codex, the first three dot-separated segments must be present and
// non-empty; further segments are ignored.
func ParseIDToken(raw string) (states.Claims, error) {
	var c idTokenClaims
	if err := parseUnverified(raw, &c); err != nil {
		return states.Claims{}, err
	}
	out := states.Claims{Email: c.Email}
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

// AccessTokenExpiry returns the exp claim of an access token that is a JWT.
// An opaque access token, or a JWT without exp, reports ok == false: the
// expiry is then unknown, which is not an error.
func AccessTokenExpiry(raw string) (exp time.Time, ok bool) {
	var c jwt.RegisteredClaims
	if err := parseUnverified(raw, &c); err != nil || c.ExpiresAt == nil {
		return time.Time{}, false
	}
	return c.ExpiresAt.Time, true
}

// parseUnverified decodes the payload of a JWT into claims.
func parseUnverified(raw string, claims jwt.Claims) error {
	parts := strings.Split(raw, ".")
	if len(parts) < 3 {
		return fmt.Errorf("%w: %d segment(s), want at least 3", ErrMalformedToken, len(parts))
	}
	for i, p := range parts[:3] {
		if p == "" {
			return fmt.Errorf("%w: segment %d is empty", ErrMalformedToken, i+1)
		}
	}
	_, _, err := parser.ParseUnverified(strings.Join(parts[:3], "."), claims)
	// An unknown or missing "alg" only matters for signature checks, which
	// credfsm does not do; the claims are decoded before it is looked at.
	if err != nil && !errors.Is(err, jwt.ErrTokenUnverifiable) {
		return fmt.Errorf("%w: %s", ErrMalformedToken, describeJWTError(err))
	}
	return nil
}

// describeJWTError turns a jwt error into text that cannot echo the token.
// The jwt package's messages name the failing step; the json errors it wraps
// may quote a few bytes of the decoded payload, so only their type is kept.
func describeJWTError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ):
		return fmt.Sprintf("claim %q has the wrong JSON type (%s, want %s)", typ.Field, typ.Value, typ.Type)
	case errors.As(err, &syn):
		return fmt.Sprintf("payload is not valid JSON (offset %d)", syn.Offset)
	}
	msg := err.Error()
	if i := strings.Index(msg, ":"); i > 0 {
		msg = msg[:i]
	}
	return msg
}
