package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/credfsm/credfsm/states"
)

// DefaultTimeout bounds one redemption, from sending the request to reading
// the last byte of the response, when no WithTimeout option is given.
const DefaultTimeout = 30 * time.Second

// DefaultUserAgent is sent unless WithUserAgent says otherwise.
const DefaultUserAgent = "credfsm"

// Client redeems refresh tokens at one provider's token endpoint. It holds
// no tokens and no state between calls, and is safe for concurrent use;
// making sure a refresh token is redeemed only once is the state machine's
// job.
type Client struct {
	profile   Profile
	tokenURL  string
	hc        *http.Client
	timeout   time.Duration
	userAgent string
	cls       classifier
}

// Option configures a Client.
type Option func(*clientConfig)

type clientConfig struct {
	hc        *http.Client
	now       func() time.Time
	timeout   time.Duration
	getenv    func(string) string
	userAgent string
}

// WithHTTPClient sets the HTTP client requests are sent with (default
// http.DefaultClient). Its redirect policy is replaced: a token endpoint's
// redirect is reported, never followed.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *clientConfig) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithClock sets the clock used to turn expires_in into an expiry time and
// to read Retry-After dates (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *clientConfig) {
		if now != nil {
			c.now = now
		}
	}
}

// WithTimeout bounds each redemption (default DefaultTimeout). Zero or less
// leaves only the caller's context and the HTTP client's own timeout.
func WithTimeout(d time.Duration) Option {
	return func(c *clientConfig) { c.timeout = d }
}

// WithGetenv sets how the profile's URLEnv variable is read (default
// os.Getenv). Tests pass a map lookup so that the environment of the machine
// running them cannot redirect their requests.
func WithGetenv(getenv func(string) string) Option {
	return func(c *clientConfig) {
		if getenv != nil {
			c.getenv = getenv
		}
	}
}

// WithUserAgent sets the User-Agent header (default DefaultUserAgent).
func WithUserAgent(ua string) Option {
	return func(c *clientConfig) { c.userAgent = ua }
}

// NewClient checks a profile and returns a client for it. The token URL is
// the profile's URLEnv variable when that is set and not empty, else
// TokenURL; either way it must pass CheckTokenURL. Errors wrap
// ErrInvalidProfile or ErrInsecureEndpoint.
func NewClient(p Profile, opts ...Option) (*Client, error) {
	cfg := clientConfig{
		hc:        http.DefaultClient,
		now:       time.Now,
		timeout:   DefaultTimeout,
		getenv:    os.Getenv,
		userAgent: DefaultUserAgent,
	}
	for _, o := range opts {
		o(&cfg)
	}

	p = p.clone()
	if err := p.check(); err != nil {
		return nil, err
	}
	tokenURL := p.TokenURL
	if p.URLEnv != "" {
		if v := cfg.getenv(p.URLEnv); v != "" {
			tokenURL = v
		}
	}
	if err := CheckTokenURL(tokenURL); err != nil {
		if tokenURL != p.TokenURL {
			return nil, fmt.Errorf("%w (set by %s)", err, p.URLEnv)
		}
		return nil, err
	}

	// A shallow copy shares the transport and its connection pool; only the
	// redirect policy differs. Following a 307 would resend the refresh
	// token to whatever host the response names.
	hc := *cfg.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	return &Client{
		profile:   p,
		tokenURL:  tokenURL,
		hc:        &hc,
		timeout:   cfg.timeout,
		userAgent: cfg.userAgent,
		cls: classifier{
			codes:        p.codeTable(),
			now:          cfg.now,
			clientSecret: p.ClientSecret.Reveal(),
		},
	}, nil
}

// TokenURL returns the endpoint the client posts to, after any override.
func (c *Client) TokenURL() string { return c.tokenURL }

// Profile returns a copy of the client's profile.
func (c *Client) Profile() Profile { return c.profile.clone() }

// Redeem exchanges a refresh token for new tokens.
//
// On success the grant holds whatever the response carried; a field left
// out is empty, meaning the stored value stays. An id token that cannot be
// parsed does not fail the redemption: the grant then has IDTokenErr set and
// no claims, so that a rotated refresh token is still persisted.
//
// On failure the error is a *states.RefreshError: permanent with a reason
// when the provider refused the refresh token or the client for good,
// transient otherwise (network errors, timeouts, 408, 429, 5xx, unexpected
// bodies). It never contains a token.
func (c *Client) Redeem(ctx context.Context, refreshToken states.Secret) (states.Grant, error) {
	if refreshToken.IsZero() {
		return states.Grant{}, &states.RefreshError{
			Permanent: true,
			Reason:    states.ReasonInvalidGrant,
			Err:       ErrNoRefreshToken,
		}
	}
	sent := refreshToken.Reveal()

	parent := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := c.newRequest(ctx, sent)
	if err != nil {
		// Building a request from a checked URL fails only on a nil
		// context or a bad method; neither can pass, but say so anyway.
		return states.Grant{}, &states.RefreshError{Err: err}
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		return states.Grant{}, c.transportError(parent, ctx, err)
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodySize+1))
	if err != nil {
		e := c.transportError(parent, ctx, err)
		e.Status = resp.StatusCode
		return states.Grant{}, e
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: body}
	if len(body) > MaxBodySize {
		r.body, r.overCap = body[:MaxBodySize], true
	}

	g, rerr := c.cls.classify(r, sent)
	if rerr != nil {
		return states.Grant{}, rerr
	}
	return g, nil
}

// newRequest writes the refresh request the profile describes.
//
// https://www.rfc-editor.org/rfc/rfc6749#section-6: "grant_type REQUIRED.
// Value MUST be set to "refresh_token". refresh_token REQUIRED. scope
// OPTIONAL." A client with credentials authenticates as in section 2.3; one
// without identifies itself with client_id (section 3.2.1).
func (c *Client) newRequest(ctx context.Context, refreshToken string) (*http.Request, error) {
	p := &c.profile
	style := p.authStyle()
	basic := style == AuthBasic

	var body []byte
	var contentType string
	switch p.Encoding {
	case EncodeJSON:
		// Field order follows what Codex sends, so that captured requests
		// compare equal byte for byte.
		var fields struct {
			ClientID     string `json:"client_id,omitempty"`
			ClientSecret string `json:"client_secret,omitempty"`
			GrantType    string `json:"grant_type"`
			RefreshToken string `json:"refresh_token"`
			Scope        string `json:"scope,omitempty"`
		}
		if !basic {
			fields.ClientID = p.ClientID
			fields.ClientSecret = p.ClientSecret.Reveal()
		}
		fields.GrantType = "refresh_token"
		fields.RefreshToken = refreshToken
		fields.Scope = p.Scope
		var err error
		if body, err = json.Marshal(fields); err != nil {
			return nil, fmt.Errorf("oauth: encoding the refresh request: %w", err)
		}
		contentType = "application/json"
	default:
		form := url.Values{
			"grant_type":    {"refresh_token"},
			"refresh_token": {refreshToken},
		}
		if p.Scope != "" {
			form.Set("scope", p.Scope)
		}
		if !basic {
			form.Set("client_id", p.ClientID)
			if !p.ClientSecret.IsZero() {
				form.Set("client_secret", p.ClientSecret.Reveal())
			}
		}
		body = []byte(form.Encode())
		contentType = "application/x-www-form-urlencoded"
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.tokenURL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("oauth: building the refresh request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if basic {
		// https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1: "The client
		// identifier is encoded using the application/x-www-form-urlencoded
		// encoding algorithm [...] and the encoded value is used as the
		// username; the client password is encoded using the same algorithm
		// and used as the password."
		req.SetBasicAuth(url.QueryEscape(p.ClientID), url.QueryEscape(p.ClientSecret.Reveal()))
	}
	return req, nil
}

// transportError describes a redemption that got no complete response.
//
// TODO: a timeout or a broken connection after the request was sent is
// ambiguous: the provider may have rotated the refresh token already. The
// error does not say whether the request reached the wire (httptrace could
// tell); states.RefreshError would need a field for it, and until then the
// runner must treat every transient failure as possibly ambiguous and
// re-read the store before redeeming again. The
// cause is kept for errors.Is; net/http's errors name the URL and the network
// problem, never the request body. parent is the caller's context, ctx the
// one bounded by the client's timeout.
func (c *Client) transportError(parent, ctx context.Context, err error) *states.RefreshError {
	e := &states.RefreshError{
		Err: fmt.Errorf("oauth: no complete response from the token endpoint: %w", err),
	}
	switch {
	case parent.Err() != nil:
		e.Detail = "the caller gave up: " + parent.Err().Error()
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		e.Detail = fmt.Sprintf("no answer within %s", c.timeout)
	}
	return e
}
