package transitions_test

import (
	"strings"
	"testing"
	"time"

	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

var now = time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)

// tokens returns a managed record whose access token expires at exp and was
// obtained at last; either may be zero (unknown).
func tokens(exp, last time.Time) states.Record {
	return states.Record{
		Mode: states.ModeManaged,
		Tokens: states.Tokens{
			AccessToken:  states.NewSecret("at"),
			RefreshToken: states.NewSecret("rt"),
		},
		AccessExpiry: exp,
		LastRefresh:  last,
	}
}

func TestPolicyStale(t *testing.T) {
	hour := time.Hour
	day := 24 * time.Hour
	tests := []struct {
		name   string
		policy transitions.Policy
		rec    states.Record
		want   bool
	}{
		// With a known expiry: stale within the skew window before it.
		{"expiry/outside_default_skew", transitions.Policy{},
			tokens(now.Add(10*time.Minute), now.Add(-hour)), false},
		{"expiry/exactly_at_window_edge_is_not_stale", transitions.Policy{},
			tokens(now.Add(transitions.DefaultSkew), now.Add(-hour)), false},
		{"expiry/inside_default_skew", transitions.Policy{},
			tokens(now.Add(transitions.DefaultSkew-time.Second), now.Add(-hour)), true},
		{"expiry/already_expired", transitions.Policy{},
			tokens(now.Add(-time.Minute), now.Add(-hour)), true},
		{"expiry/configured_skew_outside", transitions.Policy{Skew: time.Minute},
			tokens(now.Add(2*time.Minute), now.Add(-hour)), false},
		{"expiry/configured_skew_inside", transitions.Policy{Skew: time.Minute},
			tokens(now.Add(30*time.Second), now.Add(-hour)), true},
		{"expiry/configured_skew_wider_than_default", transitions.Policy{Skew: 20 * time.Minute},
			tokens(now.Add(10*time.Minute), now.Add(-hour)), true},
		{"expiry/unknown_last_refresh_uses_plain_skew", transitions.Policy{},
			tokens(now.Add(4*time.Minute), time.Time{}), true},

		// The skew is capped at half the token's lifetime: a token that
		// lives 6 minutes is not stale from birth under a 5-minute skew.
		{"half_lifetime/short_token_young", transitions.Policy{},
			tokens(now.Add(4*time.Minute), now.Add(-2*time.Minute)), false},
		{"half_lifetime/short_token_exactly_half", transitions.Policy{},
			tokens(now.Add(3*time.Minute), now.Add(-3*time.Minute)), false},
		{"half_lifetime/short_token_past_half", transitions.Policy{},
			tokens(now.Add(3*time.Minute-time.Second), now.Add(-3*time.Minute-time.Second)), true},
		{"half_lifetime/long_token_uses_skew", transitions.Policy{},
			tokens(now.Add(6*time.Minute), now.Add(-54*time.Minute)), false},

		// Without an expiry: stale MaxAge after the last refresh.
		{"no_expiry/refreshed_yesterday", transitions.Policy{},
			tokens(time.Time{}, now.Add(-day)), false},
		{"no_expiry/exactly_8_days_is_not_stale", transitions.Policy{},
			tokens(time.Time{}, now.Add(-8*day)), false},
		{"no_expiry/8_days_and_a_second", transitions.Policy{},
			tokens(time.Time{}, now.Add(-8*day-time.Second)), true},
		{"no_expiry/configured_max_age", transitions.Policy{MaxAge: hour},
			tokens(time.Time{}, now.Add(-hour-time.Second)), true},

		// Without either, the record is usable and never stale by time.
		{"no_expiry/no_last_refresh_is_fresh", transitions.Policy{},
			tokens(time.Time{}, time.Time{}), false},

		{"api_key/never_stale", transitions.Policy{},
			states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret("k"),
				LastRefresh: now.Add(-100 * day)}, false},
		{"nothing/never_stale", transitions.Policy{}, states.Record{}, false},
		{"host_managed/inside_skew", transitions.Policy{},
			func() states.Record {
				r := tokens(now.Add(time.Minute), now.Add(-hour))
				r.Mode = states.ModeExternal
				return r
			}(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.Stale(tt.rec, now); got != tt.want {
				at, ok := tt.policy.StaleAt(tt.rec)
				t.Errorf("Stale() = %v, want %v (StaleAt = %v, %v)", got, tt.want, at, ok)
			}
		})
	}
}

func TestPolicyStaleAt(t *testing.T) {
	tests := []struct {
		name   string
		policy transitions.Policy
		rec    states.Record
		want   time.Time
		wantOK bool
	}{
		{"skew_before_expiry", transitions.Policy{},
			tokens(now.Add(time.Hour), now), now.Add(55 * time.Minute), true},
		{"half_lifetime_cap", transitions.Policy{},
			tokens(now.Add(6*time.Minute), now), now.Add(3 * time.Minute), true},
		{"half_lifetime_cap_with_configured_skew", transitions.Policy{Skew: time.Hour},
			tokens(now.Add(time.Hour), now), now.Add(30 * time.Minute), true},
		{"last_refresh_after_expiry_ignored", transitions.Policy{},
			tokens(now, now.Add(time.Hour)), now.Add(-transitions.DefaultSkew), true},
		{"max_age_without_expiry", transitions.Policy{},
			tokens(time.Time{}, now), now.Add(transitions.DefaultMaxAge), true},
		{"unknown", transitions.Policy{}, tokens(time.Time{}, time.Time{}), time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.policy.StaleAt(tt.rec)
			if !got.Equal(tt.want) || ok != tt.wantOK {
				t.Errorf("StaleAt() = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestExpired(t *testing.T) {
	tests := []struct {
		name string
		exp  time.Time
		want bool
	}{
		{"before_expiry", now.Add(time.Second), false},
		{"at_expiry", now, true},
		{"after_expiry", now.Add(-time.Second), true},
		{"unknown_expiry", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := transitions.Expired(tokens(tt.exp, time.Time{}), now); got != tt.want {
				t.Errorf("Expired() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPolicyBackoff(t *testing.T) {
	const s = time.Second
	def := transitions.Policy{}
	tests := []struct {
		name     string
		policy   transitions.Policy
		attempts int
		hint     time.Duration
		jitter   float64
		want     time.Duration
	}{
		// jitter 0 gives the lower bound, half the exponential value.
		{"grows/first", def, 1, 0, 0, 2500 * time.Millisecond},
		{"grows/second", def, 2, 0, 0, 5 * s},
		{"grows/third", def, 3, 0, 0, 10 * s},
		{"grows/fourth", def, 4, 0, 0, 20 * s},
		{"capped/at_max", def, 7, 0, 0, 150 * s},
		{"capped/many_attempts", def, 1000, 0, 0, 150 * s},
		{"capped/upper_bound", def, 1000, 0, 0.999999,
			transitions.DefaultBackoffMax - 150*time.Microsecond},
		{"no_attempts_yet_is_first", def, 0, 0, 0, 2500 * time.Millisecond},
		{"jitter/half_way", def, 1, 0, 0.5, 3750 * time.Millisecond},
		{"jitter/negative_clamped", def, 1, 0, -3, 2500 * time.Millisecond},
		{"configured/base_and_max", transitions.Policy{BackoffBase: s, BackoffMax: 4 * s}, 5, 0, 0, 2 * s},
		{"configured/max_below_base_means_base",
			transitions.Policy{BackoffBase: 10 * s, BackoffMax: s}, 3, 0, 0, 5 * s},
		{"hint/longer_wins", def, 1, 30 * s, 0.5, 30 * s},
		{"hint/shorter_ignored", def, 3, s, 0, 10 * s},
		{"hint/capped_at_an_hour", def, 1, 3 * time.Hour, 0, time.Hour},
		{"hint/an_hour_is_allowed", def, 1, time.Hour, 0, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.Backoff(tt.attempts, tt.hint, tt.jitter)
			if diff := got - tt.want; diff < -time.Millisecond || diff > time.Millisecond {
				t.Errorf("Backoff(%d, %v, %v) = %v, want %v", tt.attempts, tt.hint, tt.jitter, got, tt.want)
			}
		})
	}
}

// TestPolicyBackoffRange checks the bounds for every attempt and a spread of
// jitter values: the wait lies in [d/2, d) for d = base·2^(attempts-1)
// capped at max, and never shrinks as failures accumulate.
func TestPolicyBackoffRange(t *testing.T) {
	p := transitions.Policy{BackoffBase: 3 * time.Second, BackoffMax: time.Minute}
	jitters := []float64{0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999999}
	prev := time.Duration(0)
	for attempts := 1; attempts <= 12; attempts++ {
		d := p.BackoffBase << (attempts - 1)
		if d > p.BackoffMax {
			d = p.BackoffMax
		}
		low := p.Backoff(attempts, 0, 0)
		if low < prev {
			t.Errorf("attempt %d: lower bound %v shrank from %v", attempts, low, prev)
		}
		prev = low
		for _, j := range jitters {
			got := p.Backoff(attempts, 0, j)
			if got < d/2 || got >= d {
				t.Errorf("Backoff(%d, 0, %v) = %v, want in [%v, %v)", attempts, j, got, d/2, d)
			}
		}
		if got := p.Backoff(attempts, 0, 7); got < d/2 || got > d {
			t.Errorf("Backoff(%d, 0, 7) = %v, want clamped into [%v, %v]", attempts, got, d/2, d)
		}
	}
}

func TestPolicyViolation(t *testing.T) {
	key := states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret("sk-secret-value")}
	inWorkspace := func(mode states.Mode, ws string) states.Record {
		r := tokens(now.Add(time.Hour), now)
		r.Mode = mode
		r.Tokens.AccessToken = states.NewSecret("at-secret-value")
		r.Claims.AccountID = ws
		return r
	}
	tests := []struct {
		name   string
		policy transitions.Policy
		rec    states.Record
		// want lists fragments the message must contain; nil means no
		// violation.
		want []string
	}{
		{"no_restriction/api_key", transitions.Policy{}, key, nil},
		{"no_restriction/tokens", transitions.Policy{}, inWorkspace(states.ModeManaged, "ws-a"), nil},
		{"nothing_stored",
			transitions.Policy{ForcedMethod: transitions.MethodAPI, ForcedWorkspace: "ws-a"},
			states.Record{}, nil},
		{"forced_api/api_key_allowed", transitions.Policy{ForcedMethod: transitions.MethodAPI}, key, nil},
		{"forced_api/chatgpt_tokens", transitions.Policy{ForcedMethod: transitions.MethodAPI},
			inWorkspace(states.ModeManaged, "ws-a"),
			[]string{"restricted to API keys", "sign in with an API key"}},
		{"forced_api/host_tokens", transitions.Policy{ForcedMethod: transitions.MethodAPI},
			inWorkspace(states.ModeExternal, "ws-a"), []string{"restricted to API keys"}},
		{"forced_chatgpt/tokens_allowed", transitions.Policy{ForcedMethod: transitions.MethodChatGPT},
			inWorkspace(states.ModeManaged, "ws-a"), nil},
		{"forced_chatgpt/api_key", transitions.Policy{ForcedMethod: transitions.MethodChatGPT},
			key, []string{"restricted to ChatGPT accounts", "sign in with ChatGPT"}},
		{"forced_workspace/same", transitions.Policy{ForcedWorkspace: "ws-a"},
			inWorkspace(states.ModeManaged, "ws-a"), nil},
		{"forced_workspace/other", transitions.Policy{ForcedWorkspace: "ws-a"},
			inWorkspace(states.ModeManaged, "ws-b"),
			[]string{"restricted to workspace ws-a", "workspace ws-b"}},
		{"forced_workspace/host_tokens_other", transitions.Policy{ForcedWorkspace: "ws-a"},
			inWorkspace(states.ModeExternal, "ws-b"), []string{"restricted to workspace ws-a"}},
		{"forced_workspace/none_named", transitions.Policy{ForcedWorkspace: "ws-a"},
			inWorkspace(states.ModeManaged, ""),
			[]string{"restricted to workspace ws-a", "names no workspace"}},
		{"forced_workspace/case_matters", transitions.Policy{ForcedWorkspace: "ws-a"},
			inWorkspace(states.ModeManaged, "WS-A"), []string{"restricted to workspace ws-a"}},
		{"forced_workspace/api_key_not_subject", transitions.Policy{ForcedWorkspace: "ws-a"}, key, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.Violation(tt.rec)
			if tt.want == nil {
				if got != "" {
					t.Errorf("Violation() = %q, want none", got)
				}
				return
			}
			for _, frag := range tt.want {
				if !strings.Contains(got, frag) {
					t.Errorf("Violation() = %q, want it to contain %q", got, frag)
				}
			}
			if strings.Contains(got, "secret-value") {
				t.Errorf("Violation() = %q contains a secret", got)
			}
		})
	}
}

func TestPolicyWorkspaceMismatch(t *testing.T) {
	tests := []struct {
		name   string
		policy transitions.Policy
		claims states.Claims
		want   string
	}{
		{"no_restriction", transitions.Policy{}, states.Claims{AccountID: "ws-b"}, ""},
		{"same", transitions.Policy{ForcedWorkspace: "ws-a"}, states.Claims{AccountID: "ws-a"}, ""},
		{"other", transitions.Policy{ForcedWorkspace: "ws-a"}, states.Claims{AccountID: "ws-b"},
			`the host returned tokens for workspace "ws-b", but workspace "ws-a" is required`},
		{"none", transitions.Policy{ForcedWorkspace: "ws-a"}, states.Claims{},
			`the host returned tokens for workspace "", but workspace "ws-a" is required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.WorkspaceMismatch(tt.claims); got != tt.want {
				t.Errorf("WorkspaceMismatch() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseMethod(t *testing.T) {
	tests := []struct {
		in      string
		want    transitions.Method
		wantErr bool
	}{
		{"", transitions.MethodAny, false},
		{"chatgpt", transitions.MethodChatGPT, false},
		{"api", transitions.MethodAPI, false},
		{"apikey", transitions.MethodAny, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := transitions.ParseMethod(tt.in)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("ParseMethod(%q) = %q, %v; want %q, error %v",
					tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
