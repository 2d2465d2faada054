package oauth

import "errors"

// Causes wrapped by the errors this package returns. A *states.RefreshError
// carries one of them in its Err field when the failure was found here rather
// than named by the provider, so a caller can branch with errors.Is.
var (
	// ErrInsecureEndpoint: a token URL is not https and not a loopback
	// address. Refresh tokens and client secrets would cross the network in
	// the clear.
	ErrInsecureEndpoint = errors.New(
		"oauth: token endpoint must use https (plain http is allowed only for loopback addresses)")

	// ErrInvalidProfile: a provider profile is incomplete or inconsistent.
	ErrInvalidProfile = errors.New("oauth: invalid provider profile")

	// ErrNoRefreshToken: Redeem was called with an empty refresh token.
	// Nothing is sent; there is nothing a provider could accept.
	ErrNoRefreshToken = errors.New("oauth: no refresh token to redeem")

	// ErrNotJSON: a successful status came with a body that is not a JSON
	// object, such as a captive portal or a proxy's HTML page.
	ErrNotJSON = errors.New("oauth: token endpoint answered with a body that is not a JSON object")

	// ErrBodyTooLarge: the response body is larger than MaxBodySize. The
	// first MaxBodySize bytes were read and classified; the rest was not.
	ErrBodyTooLarge = errors.New("oauth: token endpoint answered with a body larger than 1 MiB")

	// ErrNoAccessToken: a successful status came with a JSON body that holds
	// no access token, so there is nothing to use.
	ErrNoAccessToken = errors.New("oauth: token endpoint answered with success but no access token")

	// ErrRedirect: the token endpoint answered with a redirect. Redirects are
	// never followed, since following one would send the refresh token to
	// wherever it points.
	ErrRedirect = errors.New("oauth: token endpoint answered with a redirect, which is not followed")

	// ErrHostTimeout: the host did not return tokens in time.
	ErrHostTimeout = errors.New("oauth: the host did not return new tokens in time")

	// ErrHostTokens: the host returned an empty access token or id token.
	ErrHostTokens = errors.New("oauth: the host returned incomplete tokens")
)
