package transitions

import (
	"fmt"
	"time"

	"github.com/credfsm/credfsm/states"
)

// Defaults for [Policy]. Zero fields of a Policy take these values.
const (
	// DefaultSkew is how long before its expiry an access token counts as
	// stale. It covers clock skew between us and the API and the time a
	// request spends in flight.
	DefaultSkew = 5 * time.Minute

	// DefaultMaxAge is how old tokens may grow when the access token's expiry
	// is unknown (an opaque token). It is the interval Codex uses.
	DefaultMaxAge = 8 * 24 * time.Hour

	// DefaultBackoffBase and DefaultBackoffMax bound the wait after a
	// transient refresh failure: base, 2×base, 4×base … up to max, each
	// drawn between half and all of that value.
	DefaultBackoffBase = 5 * time.Second
	DefaultBackoffMax  = 5 * time.Minute

	// DefaultRecoveryCooldown is how long after a 401 started a recovery a
	// 401 for the tokens that recovery brought is answered without another
	// refresh. An API that refuses every token would otherwise cost one
	// redemption per request.
	DefaultRecoveryCooldown = time.Minute

	// maxRetryAfter caps a server's Retry-After hint, so that a bogus hint
	// cannot park a credential for days.
	maxRetryAfter = time.Hour
)

// Method is a forced login method.
type Method string

// The login methods a restriction can force.
const (
	MethodAny     Method = ""
	MethodChatGPT Method = "chatgpt" // OAuth tokens only
	MethodAPI     Method = "api"     // API keys only
)

// ParseMethod maps a configuration value to a Method.
func ParseMethod(s string) (Method, error) {
	switch Method(s) {
	case MethodAny, MethodChatGPT, MethodAPI:
		return Method(s), nil
	}
	return MethodAny, fmt.Errorf("transitions: unknown login method %q (want %q or %q)",
		s, MethodChatGPT, MethodAPI)
}

// Policy is the configuration the rules read: the staleness window, the
// backoff, and the login restrictions. The zero value is usable and means
// the defaults with no restriction.
type Policy struct {
	Skew        time.Duration
	MaxAge      time.Duration
	BackoffBase time.Duration
	BackoffMax  time.Duration

	// RecoveryCooldown: see DefaultRecoveryCooldown.
	RecoveryCooldown time.Duration

	// ForcedMethod, when set, allows only credentials of that kind.
	ForcedMethod Method
	// ForcedWorkspace, when set, allows only OAuth tokens whose id token
	// names this workspace (chatgpt_account_id, compared exactly). API keys
	// are not subject to it.
	ForcedWorkspace string
}

// withDefaults returns p with zero durations replaced by the defaults.
func (p Policy) withDefaults() Policy {
	if p.Skew <= 0 {
		p.Skew = DefaultSkew
	}
	if p.MaxAge <= 0 {
		p.MaxAge = DefaultMaxAge
	}
	if p.BackoffBase <= 0 {
		p.BackoffBase = DefaultBackoffBase
	}
	if p.BackoffMax <= 0 {
		p.BackoffMax = DefaultBackoffMax
	}
	if p.RecoveryCooldown <= 0 {
		p.RecoveryCooldown = DefaultRecoveryCooldown
	}
	if p.BackoffMax < p.BackoffBase {
		p.BackoffMax = p.BackoffBase
	}
	return p
}

// StaleAt returns the moment after which rec's tokens count as stale, and
// false when that moment is unknown (no expiry and no last-refresh time), in
// which case the tokens never go stale by time alone and are refreshed only
// when the API refuses them.
//
// With a known expiry the tokens go stale Skew before it. A token that lives
// less than twice the skew would then be stale from birth and refreshed on
// every request, so the window is capped at half the token's lifetime, when
// that lifetime is known. Without an expiry, the tokens go stale MaxAge after
// the last refresh.
func (p Policy) StaleAt(rec states.Record) (time.Time, bool) {
	p = p.withDefaults()
	if !rec.AccessExpiry.IsZero() {
		at := rec.AccessExpiry.Add(-p.Skew)
		if !rec.LastRefresh.IsZero() && rec.LastRefresh.Before(rec.AccessExpiry) {
			half := rec.LastRefresh.Add(rec.AccessExpiry.Sub(rec.LastRefresh) / 2)
			if at.Before(half) {
				at = half
			}
		}
		return at, true
	}
	if !rec.LastRefresh.IsZero() {
		return rec.LastRefresh.Add(p.MaxAge), true
	}
	return time.Time{}, false
}

// Stale reports whether rec's tokens are stale at now. API keys never are.
func (p Policy) Stale(rec states.Record, now time.Time) bool {
	if rec.Mode != states.ModeManaged && rec.Mode != states.ModeExternal {
		return false
	}
	at, ok := p.StaleAt(rec)
	return ok && now.After(at)
}

// Expired reports whether rec's access token has passed its expiry at now.
// An unknown expiry never counts as expired.
func Expired(rec states.Record, now time.Time) bool {
	return !rec.AccessExpiry.IsZero() && !now.Before(rec.AccessExpiry)
}

// Backoff returns how long to wait before the next refresh after the given
// number of consecutive transient failures (1 for the first). jitter, in
// [0, 1), spreads the wait between half and all of the exponential value, so
// that many processes that failed together do not retry together. A server
// hint (Retry-After) longer than that wins, capped at an hour.
func (p Policy) Backoff(attempts int, hint time.Duration, jitter float64) time.Duration {
	p = p.withDefaults()
	d := p.BackoffBase
	for i := 1; i < attempts && d < p.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, p.BackoffMax)
	jitter = min(max(jitter, 0), 1)
	d = d/2 + time.Duration(float64(d/2)*jitter)
	if hint > d {
		d = min(hint, maxRetryAfter)
	}
	return d
}

// Violation returns why rec breaks a login restriction, or "" when it does
// not. The text names the rule and what to do; it contains no secret.
func (p Policy) Violation(rec states.Record) string {
	oauth := rec.Mode == states.ModeManaged || rec.Mode == states.ModeExternal
	switch {
	case p.ForcedMethod == MethodAPI && oauth:
		return "login is restricted to API keys, but the credential is a ChatGPT login; " +
			"sign in with an API key"
	case p.ForcedMethod == MethodChatGPT && rec.Mode == states.ModeAPIKey:
		return "login is restricted to ChatGPT accounts, but the credential is an API key; " +
			"sign in with ChatGPT"
	case p.ForcedWorkspace != "" && oauth && rec.Claims.AccountID == "":
		return fmt.Sprintf("login is restricted to workspace %s, but the id token names no "+
			"workspace; sign in to that workspace", p.ForcedWorkspace)
	case p.ForcedWorkspace != "" && oauth && rec.Claims.AccountID != p.ForcedWorkspace:
		return fmt.Sprintf("login is restricted to workspace %s, but the credential belongs to "+
			"workspace %s; sign in to the allowed workspace", p.ForcedWorkspace, rec.Claims.AccountID)
	}
	return ""
}

// WorkspaceMismatch returns why host-supplied claims break the forced
// workspace, or "".
func (p Policy) WorkspaceMismatch(c states.Claims) string {
	if p.ForcedWorkspace == "" || c.AccountID == p.ForcedWorkspace {
		return ""
	}
	return fmt.Sprintf("the host returned tokens for workspace %q, but workspace %q is required",
		c.AccountID, p.ForcedWorkspace)
}

// WithinRecoveryCooldown reports whether now is less than the recovery
// cooldown after a recovery that started at started.
func (p Policy) WithinRecoveryCooldown(started, now time.Time) bool {
	return now.Sub(started) < p.withDefaults().RecoveryCooldown
}
