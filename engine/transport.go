package engine

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// AccountHeader carries the account (workspace) id on requests made with
// Codex credentials.
const AccountHeader = "ChatGPT-Account-ID"

// accountKey is AccountHeader as http.Header stores it. Header.Set and Del
// would canonicalise AccountHeader, which is not canonical, into a new
// string on every request; the key they would produce is computed once.
var accountKey = http.CanonicalHeaderKey(AccountHeader)

// maxDrain bounds how much of a refused response's body is read before its
// connection is reused for the retry.
const maxDrain = 64 << 10

// Transport returns an http.RoundTripper that authorises each request with
// the current bearer token (and, for Codex credentials with an account, the
// ChatGPT-Account-ID header), and on a 401 runs recovery and retries the
// request once with the new token.
//
// A request is retried only if its body can be sent again: it has none, or
// it sets GetBody (http.NewRequest does for in-memory bodies). Otherwise the
// 401 response is returned as it came. A nil base means
// http.DefaultTransport.
//
// Credentials go only to the origin (scheme, host and port) of the request
// the caller made. When an http.Client follows a redirect to another origin,
// the redirected request is sent as it is, without a token: an API that
// redirects elsewhere must not hand the bearer to whoever it points at.
func (m *Manager) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{m: m, base: base}
}

type transport struct {
	m    *Manager
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if redirectedAway(req) {
		return t.base.RoundTrip(req)
	}
	tok, v, err := t.m.token(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.base.RoundTrip(t.authorize(req, tok, v.snap.AccountID))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}

	// Recovery runs even when the request cannot be retried, so that the
	// next request gets a working token.
	d := t.m.Observe(req.Context(), tok, resp.StatusCode, nil)
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if d.Action != Retry || !replayable {
		return resp, nil
	}

	retry := t.authorize(req, d.Token, t.m.Snapshot().AccountID)
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		retry.Body = body
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
	return t.base.RoundTrip(retry)
}

// authorize clones req with the credential's headers. A RoundTripper must not
// change the request it was given.
func (t *transport) authorize(req *http.Request, tok, account string) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	if account != "" && t.m.accountHeader {
		r.Header[accountKey] = []string{account}
	} else {
		delete(r.Header, accountKey)
	}
	return r
}

// redirectedAway reports whether req is a redirect, made by an http.Client,
// to an origin other than that of the request the caller first sent.
func redirectedAway(req *http.Request) bool {
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	return first != req && !sameOrigin(first.URL, req.URL)
}

// sameOrigin compares scheme, host (case-insensitively) and port, the port
// defaulting to the scheme's.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		portOf(a) == portOf(b)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// TokenSource returns the manager as a golang.org/x/oauth2 TokenSource. Each
// Token call goes through Manager.Token; the expiry is the access token's,
// zero for an API key (which does not expire).
func (m *Manager) TokenSource() oauth2.TokenSource { return tokenSource{m} }

type tokenSource struct{ m *Manager }

func (ts tokenSource) Token() (*oauth2.Token, error) {
	tok, v, err := ts.m.token(context.Background())
	if err != nil {
		return nil, err
	}
	return &oauth2.Token{AccessToken: tok, TokenType: "Bearer", Expiry: v.snap.Expiry}, nil
}
