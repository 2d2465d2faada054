package enginetest

import (
	"time"

	"github.com/credfsm/credfsm/states"
)

// Policy is what the model reads besides events: the staleness window, the
// backoff and the login restrictions. It is the model's own copy, written
// from the documented arithmetic rather than taken from package transitions,
// so that a mistake there shows up as a disagreement here. The zero value
// means the documented defaults and no restriction.
type Policy struct {
	Skew        time.Duration // default 5 minutes
	MaxAge      time.Duration // default 8 days
	BackoffBase time.Duration // default 5 seconds
	BackoffMax  time.Duration // default 5 minutes

	// RecoveryCooldown (default 1 minute): after a 401 started a recovery,
	// how long a 401 for the tokens it brought starts none.
	RecoveryCooldown time.Duration

	// ForcedMethod is "", "chatgpt" (OAuth tokens only) or "api" (API keys
	// only). ForcedWorkspace, when set, is the only workspace whose OAuth
	// tokens may be used.
	ForcedMethod    string
	ForcedWorkspace string
}

// The documented defaults, and the cap on a server's Retry-After hint.
const (
	defaultSkew        = 5 * time.Minute
	defaultMaxAge      = 8 * 24 * time.Hour
	defaultBackoffBase = 5 * time.Second
	defaultBackoffMax  = 5 * time.Minute
	retryAfterCap      = time.Hour

	defaultRecoveryCooldown = time.Minute
)

func (p Policy) skew() time.Duration   { return orDefault(p.Skew, defaultSkew) }
func (p Policy) maxAge() time.Duration { return orDefault(p.MaxAge, defaultMaxAge) }
func (p Policy) recoveryCooldown() time.Duration {
	return orDefault(p.RecoveryCooldown, defaultRecoveryCooldown)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// isOAuth reports whether rec holds OAuth tokens, managed or host-managed.
func isOAuth(rec states.Record) bool {
	return rec.Mode == states.ModeManaged || rec.Mode == states.ModeExternal
}

// StaleAt says when rec's tokens turn stale: the skew before the access
// token's expiry, but never earlier than half-way through the token's life
// when the time of the last refresh is known; with no expiry, the maximum
// age after the last refresh; with neither, never (ok is false).
func (p Policy) StaleAt(rec states.Record) (at time.Time, ok bool) {
	exp, last := rec.AccessExpiry, rec.LastRefresh
	switch {
	case !exp.IsZero():
		at = exp.Add(-p.skew())
		if !last.IsZero() && last.Before(exp) {
			if half := last.Add(exp.Sub(last) / 2); half.After(at) {
				at = half
			}
		}
		return at, true
	case !last.IsZero():
		return last.Add(p.maxAge()), true
	}
	return time.Time{}, false
}

// Stale reports whether rec's OAuth tokens are stale at now: strictly after
// the moment StaleAt names. An API key is never stale.
func (p Policy) Stale(rec states.Record, now time.Time) bool {
	if !isOAuth(rec) {
		return false
	}
	at, ok := p.StaleAt(rec)
	return ok && now.After(at)
}

// Expired reports whether rec's access token has reached its expiry.
func Expired(rec states.Record, now time.Time) bool {
	return !rec.AccessExpiry.IsZero() && !now.Before(rec.AccessExpiry)
}

// Violates reports whether rec breaks a login restriction.
func (p Policy) Violates(rec states.Record) bool {
	switch {
	case p.ForcedMethod == "api" && isOAuth(rec):
		return true
	case p.ForcedMethod == "chatgpt" && rec.Mode == states.ModeAPIKey:
		return true
	case p.ForcedWorkspace != "" && isOAuth(rec) && rec.Claims.AccountID != p.ForcedWorkspace:
		return true
	}
	return false
}

// Backoff returns the wait after the given number of consecutive transient
// failures: the base doubled per earlier failure up to the maximum, then
// spread by jitter between half and all of it; a longer server hint wins,
// up to an hour.
func (p Policy) Backoff(attempts int, hint time.Duration, jitter float64) time.Duration {
	base := orDefault(p.BackoffBase, defaultBackoffBase)
	most := max(orDefault(p.BackoffMax, defaultBackoffMax), base)
	d := base
	for n := 1; n < attempts && d < most; n++ {
		d *= 2
	}
	d = min(d, most)
	jitter = min(max(jitter, 0), 1)
	d = d/2 + time.Duration(float64(d/2)*jitter)
	if hint > d {
		d = min(hint, retryAfterCap)
	}
	return d
}
