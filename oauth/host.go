package oauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/credfsm/credfsm/states"
)

// DefaultHostTimeout bounds how long a HostRefresher waits for the host,
// matching how long Codex's app server waits for its client.
const DefaultHostTimeout = 10 * time.Second

// HostReasonUnauthorized is the reason given to the host when the API
// refused the current tokens. It is the only reason today; the field exists
// so that hosts can tell future ones apart.
const HostReasonUnauthorized = "unauthorized"

// HostRequest is what the host is told when asked for new tokens.
type HostRequest struct {
	// Reason is why new tokens are needed, e.g. HostReasonUnauthorized.
	Reason string
	// PreviousAccountID is the account the refused tokens belonged to, ""
	// when unknown. A host signed in to several accounts uses it to pick
	// the right one.
	PreviousAccountID string
}

// HostTokens are the tokens a host hands back.
type HostTokens struct {
	AccessToken states.Secret
	IDToken     states.Secret
}

// TokenHost is implemented by an application that manages the tokens itself
// (for example an IDE that signed the user in) and lends them to credfsm.
// When the API refuses the current access token, credfsm asks the host for
// new tokens instead of redeeming a refresh token it does not have.
//
// RefreshTokens must return a new access token and id token, or an error.
// It should return when ctx is done; if it does not, the HostRefresher stops
// waiting anyway and reports a timeout. Its error text should not contain a
// token (credfsm redacts anything token-like as a precaution).
type TokenHost interface {
	RefreshTokens(ctx context.Context, req HostRequest) (HostTokens, error)
}

// TokenHostFunc adapts a function to TokenHost.
type TokenHostFunc func(ctx context.Context, req HostRequest) (HostTokens, error)

// RefreshTokens calls f.
func (f TokenHostFunc) RefreshTokens(ctx context.Context, req HostRequest) (HostTokens, error) {
	return f(ctx, req)
}

// HostRefresher asks a TokenHost for new tokens with a time limit, parses
// the id token, and returns a grant. Its RefreshHost method is what the
// effects runner calls.
type HostRefresher struct {
	host    TokenHost
	timeout time.Duration
}

// NewHostRefresher wraps host. A timeout of zero or less means
// DefaultHostTimeout.
func NewHostRefresher(host TokenHost, timeout time.Duration) *HostRefresher {
	if timeout <= 0 {
		timeout = DefaultHostTimeout
	}
	return &HostRefresher{host: host, timeout: timeout}
}

// RefreshHost asks the host for tokens for previousAccountID's session and
// returns them as a grant, with the id token's claims parsed and the access
// token's expiry read from its exp claim when it is a JWT.
//
// It fails when the host returns an error, returns an empty token, returns
// an id token that cannot be parsed, or does not answer within the timeout
// (the error then wraps ErrHostTimeout and context.DeadlineExceeded). A
// grant from a host never carries a refresh token.
func (h *HostRefresher) RefreshHost(
	ctx context.Context, previousAccountID string,
) (states.Grant, error) {
	if h == nil || h.host == nil {
		return states.Grant{}, errors.New("oauth: no token host is registered")
	}
	ctx, cancel := context.WithTimeoutCause(ctx, h.timeout, errHostDeadline)
	defer cancel()

	type result struct {
		tokens HostTokens
		err    error
	}
	// Buffered, so that a host which returns after we stopped waiting does
	// not block forever.
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			// A panicking host must not take the process down with it.
			if p := recover(); p != nil {
				r = result{err: errors.New("oauth: the host panicked while refreshing tokens")}
			}
			done <- r
		}()
		r.tokens, r.err = h.host.RefreshTokens(ctx, HostRequest{
			Reason:            HostReasonUnauthorized,
			PreviousAccountID: previousAccountID,
		})
	}()

	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return states.Grant{}, h.doneError(ctx)
	}
	if r.err != nil {
		if ctx.Err() != nil {
			// The host noticed the deadline first and said so in its own
			// words; report it the same way as a host that overran.
			return states.Grant{}, h.doneError(ctx)
		}
		return states.Grant{}, &hostError{err: r.err}
	}
	return grantFromHost(r.tokens)
}

// errHostDeadline is the cause of the context given to the host when the
// refresher's own timeout ends it, which tells it apart from a caller's
// deadline.
var errHostDeadline = errors.New("host timeout")

// doneError explains why the wait for the host ended early.
func (h *HostRefresher) doneError(ctx context.Context) error {
	if context.Cause(ctx) == errHostDeadline {
		return fmt.Errorf("%w: no answer within %s: %w", ErrHostTimeout, h.timeout, ctx.Err())
	}
	return fmt.Errorf("oauth: stopped waiting for the host: %w", ctx.Err())
}

// grantFromHost checks the host's tokens and turns them into a grant.
func grantFromHost(t HostTokens) (states.Grant, error) {
	switch {
	case t.AccessToken.IsZero() && t.IDToken.IsZero():
		return states.Grant{}, fmt.Errorf("%w: no access token and no id token", ErrHostTokens)
	case t.AccessToken.IsZero():
		return states.Grant{}, fmt.Errorf("%w: no access token", ErrHostTokens)
	case t.IDToken.IsZero():
		return states.Grant{}, fmt.Errorf("%w: no id token", ErrHostTokens)
	}
	claims, err := ParseIDToken(t.IDToken.Reveal())
	if err != nil {
		return states.Grant{}, fmt.Errorf(
			"oauth: the host returned an id token that cannot be parsed: %w", err)
	}
	g := states.Grant{IDToken: t.IDToken, AccessToken: t.AccessToken, Claims: claims}
	if exp, ok := AccessTokenExpiry(t.AccessToken.Reveal()); ok {
		g.AccessExpiry = exp
	}
	return g, nil
}

// hostError wraps an error from the host. Its text is sanitised, since the
// host's message is outside credfsm's control and lands in logs; the
// original stays reachable with errors.Is and errors.As.
type hostError struct{ err error }

func (e *hostError) Error() string {
	return "oauth: the host could not refresh tokens: " + Sanitize(e.err.Error())
}

func (e *hostError) Unwrap() error { return e.err }
