package oauth

import (
	"fmt"
	"maps"
	"strings"

	"github.com/credfsm/credfsm/states"
)

// Wire facts of the Codex provider. They must match what the OpenAI Codex
// CLI sends, byte for byte, so that credfsm and Codex can share a login.
const (
	CodexTokenURL = "https://auth.openai.com/oauth/token"
	CodexClientID = "app_EMoamEEZ73f0CkXaXp7hrann"
	CodexScope    = "openid profile email"
	// CodexURLEnv names the environment variable whose value, when set,
	// replaces the token URL verbatim (Codex's own tests point it at a mock).
	CodexURLEnv = "CODEX_REFRESH_TOKEN_URL_OVERRIDE"
)

// Error codes a token endpoint may answer with. The Codex codes come from
// OpenAI's token endpoint; the others are RFC 6749's.
const (
	CodeRefreshTokenExpired     = "refresh_token_expired"
	CodeRefreshTokenReused      = "refresh_token_reused"
	CodeRefreshTokenInvalidated = "refresh_token_invalidated"

	// https://www.rfc-editor.org/rfc/rfc6749#section-5.2
	CodeInvalidGrant       = "invalid_grant"
	CodeInvalidClient      = "invalid_client"
	CodeUnauthorizedClient = "unauthorized_client"
)

// AuthStyle says how a client with a secret authenticates at the token
// endpoint. A client without a secret always identifies itself with a
// client_id field in the body.
type AuthStyle uint8

const (
	// AuthAuto, the zero value, is AuthBasic when the profile has a client
	// secret and AuthInBody otherwise.
	AuthAuto AuthStyle = iota
	// AuthBasic sends the client id and secret as HTTP Basic credentials.
	//
	// https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1: "The
	// authorization server MUST support the HTTP Basic authentication scheme
	// for authenticating clients that were issued a client password."
	AuthBasic
	// AuthInBody sends client_id and client_secret as body fields, which
	// RFC 6749 §2.3.1 allows but does not recommend.
	AuthInBody
)

// String returns "auto", "basic" or "body".
func (s AuthStyle) String() string {
	switch s {
	case AuthAuto:
		return "auto"
	case AuthBasic:
		return "basic"
	case AuthInBody:
		return "body"
	}
	return fmt.Sprintf("auth_style(%d)", uint8(s))
}

// Encoding is how the body of a refresh request is encoded.
type Encoding uint8

const (
	// EncodeForm, the zero value, is application/x-www-form-urlencoded, the
	// encoding RFC 6749 prescribes for token requests.
	//
	// https://www.rfc-editor.org/rfc/rfc6749#section-6
	EncodeForm Encoding = iota
	// EncodeJSON is a JSON object, as the Codex provider expects.
	EncodeJSON
)

// String returns "form" or "json".
func (e Encoding) String() string {
	switch e {
	case EncodeForm:
		return "form"
	case EncodeJSON:
		return "json"
	}
	return fmt.Sprintf("encoding(%d)", uint8(e))
}

// Profile describes a provider's token endpoint as data: where it is, how a
// refresh request is written, and which error codes mean the refresh token is
// gone for good. Adding a provider means writing a Profile, not code.
//
// The zero values of AuthStyle and Encoding are the RFC 6749 defaults.
type Profile struct {
	// Name identifies the profile for people ("codex", "rfc6749").
	Name string

	// TokenURL is the token endpoint. It must be https unless the host is a
	// loopback address.
	TokenURL string

	// URLEnv, when not empty, names an environment variable whose value
	// replaces TokenURL verbatim when it is set and not empty. Clear it to
	// make TokenURL authoritative.
	URLEnv string

	// ClientID is sent with every request.
	ClientID string

	// ClientSecret is sent as AuthStyle says; leave it empty for a public
	// client.
	ClientSecret states.Secret
	AuthStyle    AuthStyle

	// Scope, when not empty, is sent as the scope field.
	Scope string

	// Encoding of the request body.
	Encoding Encoding

	// Codes maps error codes to the permanent reason they stand for. A code
	// in this table makes a failure permanent whatever the HTTP status; keys
	// are compared case-insensitively. Codes not in the table leave the
	// decision to the status (only 401 is permanent).
	Codes map[string]states.Reason
}

// StandardCodes returns the RFC 6749 error codes that mean a refresh cannot
// succeed until someone acts: the grant is dead, or the client itself is not
// accepted. Other RFC codes (invalid_request, invalid_scope,
// unsupported_grant_type) are left to the status, since with a fixed request
// shape they point at a provider-side problem more often than at the
// credential; a profile that knows better can add them.
//
// https://www.rfc-editor.org/rfc/rfc6749#section-5.2
func StandardCodes() map[string]states.Reason {
	return map[string]states.Reason{
		CodeInvalidGrant:       states.ReasonInvalidGrant,
		CodeInvalidClient:      states.ReasonClientRejected,
		CodeUnauthorizedClient: states.ReasonClientRejected,
	}
}

// CodexProfile returns the profile of the OpenAI Codex provider: a JSON body
// with client_id, grant_type, refresh_token and scope, posted to
// CodexTokenURL unless CodexURLEnv says otherwise. Its code table holds the
// three Codex codes and the standard RFC 6749 ones.
func CodexProfile() Profile {
	codes := StandardCodes()
	codes[CodeRefreshTokenExpired] = states.ReasonExpired
	codes[CodeRefreshTokenReused] = states.ReasonReused
	codes[CodeRefreshTokenInvalidated] = states.ReasonRevoked
	return Profile{
		Name:     "codex",
		TokenURL: CodexTokenURL,
		URLEnv:   CodexURLEnv,
		ClientID: CodexClientID,
		Scope:    CodexScope,
		Encoding: EncodeJSON,
		Codes:    codes,
	}
}

// RFC6749Profile returns a profile for a plain RFC 6749 provider: a
// form-encoded refresh request, the client secret (if any) sent with HTTP
// Basic, and the standard error codes. Set Scope, AuthStyle or Codes on the
// result to adjust it.
//
// https://www.rfc-editor.org/rfc/rfc6749#section-6
func RFC6749Profile(tokenURL, clientID string, clientSecret states.Secret) Profile {
	return Profile{
		Name:         "rfc6749",
		TokenURL:     tokenURL,
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Encoding:     EncodeForm,
		Codes:        StandardCodes(),
	}
}

// authStyle resolves AuthAuto.
func (p *Profile) authStyle() AuthStyle {
	if p.ClientSecret.IsZero() {
		return AuthInBody
	}
	if p.AuthStyle == AuthAuto {
		return AuthBasic
	}
	return p.AuthStyle
}

// check reports what is wrong with a profile, apart from its URL, which the
// client checks after applying any override.
func (p *Profile) check() error {
	switch {
	case strings.TrimSpace(p.ClientID) == "":
		return fmt.Errorf("%w %q: no client id", ErrInvalidProfile, p.Name)
	case p.AuthStyle > AuthInBody:
		return fmt.Errorf("%w %q: unknown auth style %s", ErrInvalidProfile, p.Name, p.AuthStyle)
	case p.Encoding > EncodeJSON:
		return fmt.Errorf("%w %q: unknown encoding %s", ErrInvalidProfile, p.Name, p.Encoding)
	}
	for code, reason := range p.Codes {
		if strings.TrimSpace(code) == "" {
			return fmt.Errorf("%w %q: empty code in the code table", ErrInvalidProfile, p.Name)
		}
		if reason == states.ReasonNone {
			return fmt.Errorf("%w %q: code %q maps to no reason", ErrInvalidProfile, p.Name, code)
		}
	}
	return nil
}

// codeTable returns the profile's codes with lower-cased keys.
func (p *Profile) codeTable() map[string]states.Reason {
	t := make(map[string]states.Reason, len(p.Codes))
	for code, reason := range p.Codes {
		t[strings.ToLower(code)] = reason
	}
	return t
}

// clone returns a copy that shares nothing mutable with p.
func (p Profile) clone() Profile {
	p.Codes = maps.Clone(p.Codes)
	return p
}
