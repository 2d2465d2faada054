package oauth

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// CheckTokenURL reports whether raw is acceptable as a token endpoint: an
// absolute https URL, or an http URL whose host is a loopback address
// (127.0.0.0/8, ::1 or localhost), where traffic never leaves the machine.
// URLs carrying user credentials are refused too, since URLs end up in error
// messages and logs.
//
// https://www.rfc-editor.org/rfc/rfc6749#section-3.2: "the authorization
// server MUST require the use of TLS [...] when sending requests to the token
// endpoint".
func CheckTokenURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole input; the parser's complaint names
		// the part that is wrong, and an unparsable URL is not echoed in
		// case it holds credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("oauth: token URL does not parse: %w", err)
	}
	if !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("oauth: token URL %q is not an absolute URL with a host", raw)
	}
	if u.User != nil {
		return fmt.Errorf("oauth: token URL for host %q must not carry user credentials; "+
			"configure the client secret in the profile instead", u.Host)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%w: %q is not loopback; use https", ErrInsecureEndpoint, u.Host)
	}
	return fmt.Errorf("%w: scheme %q in %q", ErrInsecureEndpoint, u.Scheme, u.Redacted())
}

// isLoopback reports whether host names the local machine. Only the literal
// name "localhost" and loopback IP addresses count: other names would need a
// resolver, whose answer an attacker on the network may control.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return addr.Unmap().IsLoopback()
}
