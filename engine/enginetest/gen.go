package enginetest

import (
	"errors"
	"fmt"
	"time"

	"pgregory.net/rapid"

	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
)

// Generators for rapid tests. Every list is ordered simplest first, because
// rapid shrinks a failing case towards the start of the lists it samples
// from.

// Jumps generates how far to move a clock: from a second to three weeks,
// covering the skew window, token lifetimes, backoffs and the maximum age
// of tokens without an expiry.
func Jumps() *rapid.Generator[time.Duration] {
	return rapid.SampledFrom([]time.Duration{
		time.Second, 10 * time.Second, time.Minute, 3 * time.Minute, 6 * time.Minute,
		20 * time.Minute, 40 * time.Minute, time.Hour, 3 * time.Hour, 24 * time.Hour,
		9 * 24 * time.Hour, 21 * 24 * time.Hour,
	})
}

// Workspaces the generated credentials belong to. A test that forces a
// workspace forces the first.
const (
	WorkspaceMain  = "ws-main"
	WorkspaceOther = "ws-other"
)

// Records returns a small pool of credentials as seen at now: two API keys,
// managed tokens that are fresh, stale, undated or old and opaque, and
// host-managed tokens that are fresh, expired or for the other workspace.
// Token values depend only on the credential's name, so that the same name
// drawn twice is the same credential.
func Records(now time.Time) []states.Record {
	managed := func(tag, ws string, exp, last time.Time) states.Record {
		return states.Record{
			Mode: states.ModeManaged,
			Tokens: states.Tokens{
				IDToken:      states.NewSecret("id-token-" + tag),
				AccessToken:  states.NewSecret("access-token-" + tag),
				RefreshToken: states.NewSecret("refresh-token-" + tag),
				AccountID:    ws,
			},
			Claims:       states.Claims{Email: tag + "@example.com", Plan: states.PlanPro, AccountID: ws},
			AccessExpiry: exp,
			LastRefresh:  last,
		}
	}
	host := func(tag, ws string, exp time.Time) states.Record {
		r := managed(tag, ws, exp, now)
		r.Mode = states.ModeExternal
		r.Tokens.RefreshToken = states.Secret{}
		return r
	}
	key := func(tag string) states.Record {
		return states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret("sk-test-key-" + tag)}
	}
	return []states.Record{
		key("a"),
		managed("m1", WorkspaceMain, now.Add(time.Hour), now),
		host("h1", WorkspaceMain, now.Add(time.Hour)),
		key("b"),
		managed("m2", WorkspaceOther, now.Add(time.Hour), now),
		managed("m3", WorkspaceMain, now.Add(2*time.Minute), now.Add(-58*time.Minute)),
		managed("m4", WorkspaceMain, time.Time{}, time.Time{}),
		managed("m5", WorkspaceMain, time.Time{}, now.Add(-9*24*time.Hour)),
		host("h2", WorkspaceMain, now.Add(-time.Minute)),
		host("h3", WorkspaceOther, now.Add(time.Hour)),
	}
}

// Grants generates what a token endpoint or a host might return at now:
// rotated tokens, an access token alone (no rotation), an id token that
// cannot be read, and tokens for the other workspace.
func Grants(now time.Time) *rapid.Generator[states.Grant] {
	return rapid.Custom(func(t *rapid.T) states.Grant {
		n := rapid.IntRange(1, 3).Draw(t, "grant")
		tag := fmt.Sprintf("g%d", n)
		g := states.Grant{
			AccessToken:  states.NewSecret("access-token-" + tag),
			AccessExpiry: now.Add(time.Hour),
		}
		switch rapid.SampledFrom([]string{"rotated", "access only", "bad id token", "other workspace"}).
			Draw(t, "grant kind") {
		case "rotated":
			g.RefreshToken = states.NewSecret("refresh-token-" + tag)
			g.IDToken = states.NewSecret("id-token-" + tag)
			g.Claims = states.Claims{Email: tag + "@example.com", AccountID: WorkspaceMain}
		case "bad id token":
			g.RefreshToken = states.NewSecret("refresh-token-" + tag)
			g.IDToken = states.NewSecret("id-token-unreadable-" + tag)
			g.IDTokenErr = errors.New("oauth: malformed JWT")
		case "other workspace":
			g.IDToken = states.NewSecret("id-token-other-" + tag)
			g.Claims = states.Claims{Email: tag + "@example.com", AccountID: WorkspaceOther}
		}
		return g
	})
}

// refreshErrors are the failures a redemption can report.
var refreshErrors = []*states.RefreshError{
	{Status: 503},
	{Status: 429, RetryAfter: 30 * time.Second},
	{Status: 429, RetryAfter: 3 * time.Hour},
	{Err: errors.New("connection reset")},
	{Permanent: true, Reason: states.ReasonInvalidGrant, Status: 400, Code: "invalid_grant"},
	{Permanent: true, Reason: states.ReasonReused, Status: 401, Code: "refresh_token_reused"},
	{Permanent: true, Reason: states.ReasonExpired, Status: 401, Code: "refresh_token_expired"},
	{Permanent: true, Reason: states.ReasonUnknown, Status: 401},
}

// Events generates one event for a machine that m models, at now or up to
// three weeks later. Most events are ones the model's state answers, for
// the current generation; some are outcomes for another generation, and
// some are not permitted at all, so that refusals are exercised too.
func Events(m *Model, now time.Time) *rapid.Generator[states.Event] {
	return rapid.Custom(func(t *rapid.T) states.Event {
		at := now
		if rapid.Bool().Draw(t, "later") {
			at = now.Add(Jumps().Draw(t, "after"))
		}
		pool := Records(at)
		if !m.Record.IsZero() {
			// The current credential, and the same refresh token with a new
			// access token (re-saved by someone else).
			same := m.Record
			same.Tokens.AccessToken = states.NewSecret("access-token-resaved")
			pool = append(pool, m.Record, same)
		}
		if !m.Spent.IsZero() {
			// What the store holds when this process's save of a rotated
			// token failed: the refresh token it spent.
			spent := Records(at)[1]
			spent.Tokens.RefreshToken = m.Spent
			pool = append(pool, spent)
		}
		record := func(label string) states.Record { return rapid.SampledFrom(pool).Draw(t, label) }
		version := func() states.Version {
			return rapid.SampledFrom([]states.Version{m.Version, "v1", "v2", states.NoVersion}).Draw(t, "version")
		}
		gen := m.Generation
		switch rapid.SampledFrom([]string{"current", "current", "current", "older", "newer"}).Draw(t, "generation") {
		case "older":
			gen--
		case "newer":
			gen++
		}
		jitter := func() float64 { return rapid.Float64Range(0, 0.999).Draw(t, "jitter") }

		kinds := []states.EventKind{
			states.KindTokenRequested, states.KindWoke, states.KindUnauthorized,
			states.KindRefreshRequested, states.KindLoaded, states.KindLoginRequested,
			states.KindLogoutRequested, states.KindStoreReread, states.KindRereadFailed,
			states.KindRefreshSucceeded, states.KindRefreshFailed, states.KindRefreshRejected,
			states.KindHostRefreshSucceeded, states.KindHostRefreshFailed, states.KindPersisted,
			states.KindPersistFailed, states.KindStoresCleared,
		}
		// What usually comes next in the model's state is drawn more often,
		// so that sequences get deep into a refresh and out again.
		for range 2 {
			kinds = append(kinds, likelyKinds(m.State)...)
		}
		switch rapid.SampledFrom(kinds).Draw(t, "kind") {
		case states.KindTokenRequested:
			return states.TokenRequested{At: at}
		case states.KindWoke:
			return states.Woke{At: at, Generation: gen}
		case states.KindUnauthorized:
			return states.Unauthorized{At: at, Generation: gen}
		case states.KindRefreshRequested:
			return states.RefreshRequested{At: at}
		case states.KindLoaded:
			switch rapid.SampledFrom([]string{"record", "nothing", "unreadable", "environment"}).Draw(t, "loaded") {
			case "nothing":
				return states.Loaded{At: at}
			case "unreadable":
				return states.Loaded{At: at, Version: "v-bad",
					Err: fmt.Errorf("storage: auth.json: %w", states.ErrUnreadable)}
			case "environment":
				return states.Loaded{At: at, Record: pool[3], FromEnv: true}
			}
			return states.Loaded{At: at, Record: record("stored"), Version: version()}
		case states.KindLoginRequested:
			return states.LoginRequested{At: at, Record: record("login")}
		case states.KindLogoutRequested:
			return states.LogoutRequested{At: at}
		case states.KindStoreReread:
			rec := states.Record{}
			if rapid.IntRange(0, 5).Draw(t, "empty store") > 0 {
				rec = record("stored")
			}
			return states.StoreReread{At: at, Generation: gen, Record: rec, Version: version()}
		case states.KindRereadFailed:
			unreadable := rapid.Bool().Draw(t, "unreadable")
			err := fmt.Errorf("storage: %w", states.ErrLockTimeout)
			if unreadable {
				err = fmt.Errorf("storage: %w", states.ErrUnreadable)
			}
			return states.RereadFailed{At: at, Generation: gen, Unreadable: unreadable, Err: err}
		case states.KindRefreshSucceeded:
			return states.RefreshSucceeded{At: at, Generation: gen, Grant: Grants(at).Draw(t, "grant")}
		case states.KindRefreshFailed:
			e := rapid.SampledFrom(refreshErrors[:4]).Draw(t, "failure")
			return states.RefreshFailed{At: at, Generation: gen, Err: e, Jitter: jitter()}
		case states.KindRefreshRejected:
			e := rapid.SampledFrom(refreshErrors[4:]).Draw(t, "rejection")
			return states.RefreshRejected{At: at, Generation: gen, Err: e}
		case states.KindHostRefreshSucceeded:
			return states.HostRefreshSucceeded{At: at, Generation: gen, Grant: Grants(at).Draw(t, "grant")}
		case states.KindHostRefreshFailed:
			return states.HostRefreshFailed{At: at, Generation: gen, Err: errors.New("host: no answer"),
				Jitter: jitter()}
		case states.KindPersisted:
			return states.Persisted{At: at, Generation: gen, Version: version()}
		case states.KindPersistFailed:
			conflict := rapid.Bool().Draw(t, "conflict")
			return states.PersistFailed{At: at, Generation: gen, Conflict: conflict,
				Err: fmt.Errorf("storage: %w", states.ErrConflict)}
		default:
			var err error
			if rapid.Bool().Draw(t, "clear failed") {
				err = errors.New("keyring: locked")
			}
			return states.StoresCleared{At: at, Generation: gen, Err: err}
		}
	})
}

// RefreshClass is what a redemption amounts to, as the machine sees it.
type RefreshClass uint8

const (
	// RefreshOK: new tokens came back.
	RefreshOK RefreshClass = iota
	// RefreshBadIDToken: new tokens came back, with an id token that does
	// not parse.
	RefreshBadIDToken
	// RefreshTransient: nothing was redeemed, and trying later may work.
	RefreshTransient
	// RefreshLost: the server redeemed the token, but the answer never
	// arrived; to the client it is a timeout.
	RefreshLost
	// RefreshPermanent: the server refused the refresh token for good.
	RefreshPermanent
)

// RefreshOutcome is one way a redemption at an oauthtest.Server can end,
// with the fault that provokes it and what a client makes of it.
type RefreshOutcome struct {
	Name  string
	Class RefreshClass
	// Reason is why a permanent refusal happened; RetryAfter is the hint of
	// a transient one.
	Reason     states.Reason
	RetryAfter time.Duration
	// Code is the error code a refusal carries. The outcome's class and
	// reason are those of the Codex dialect; an RFC 6749 provider knows
	// only its standard codes, and a refusal with another code is, to its
	// clients, a plain 400: transient.
	Code string

	fault *oauthtest.Fault
	cut   bool // the Wire cuts the request: a timeout
}

// Arm queues the outcome's fault at srv and tells w to cut the request if
// the outcome is a timeout. Call it just before the request is made.
func (o RefreshOutcome) Arm(srv *oauthtest.Server, w *Wire) {
	if o.fault != nil {
		srv.Inject(*o.fault)
	}
	if o.cut {
		w.CutNext(o.Class == RefreshLost)
	}
}

// Redeems reports whether the server redeems an active refresh token under
// this outcome (rotating it, unless it does not rotate).
func (o RefreshOutcome) Redeems() bool {
	return o.Class == RefreshOK || o.Class == RefreshBadIDToken || o.Class == RefreshLost
}

func fault(f oauthtest.Fault) *oauthtest.Fault { return &f }

// RefreshOutcomes returns every outcome RefreshOutcomeGen draws from, in
// its order.
func RefreshOutcomes() []RefreshOutcome {
	reject := func(code string, r states.Reason) RefreshOutcome {
		return RefreshOutcome{Name: "reject " + code, Class: RefreshPermanent, Reason: r, Code: code,
			fault: fault(oauthtest.Reject(code))}
	}
	status := func(code int) RefreshOutcome {
		return RefreshOutcome{Name: fmt.Sprintf("status %d", code), Class: RefreshTransient,
			fault: fault(oauthtest.Status(code))}
	}
	return []RefreshOutcome{
		{Name: "ok", Class: RefreshOK},
		{Name: "ok, slowly", Class: RefreshOK, fault: fault(oauthtest.Delay(5 * time.Millisecond))},
		{Name: "ok, id token unreadable", Class: RefreshBadIDToken, fault: fault(oauthtest.BadIDToken())},
		status(500), status(502), status(503), status(408), status(403),
		{Name: "rate limited, retry after 30s", Class: RefreshTransient, RetryAfter: 30 * time.Second,
			fault: fault(oauthtest.RateLimited("30"))},
		{Name: "rate limited, retry after 2h", Class: RefreshTransient, RetryAfter: 2 * time.Hour,
			fault: fault(oauthtest.RateLimited("7200"))},
		{Name: "rate limited, no hint", Class: RefreshTransient, fault: fault(oauthtest.RateLimited(""))},
		{Name: "proxy page", Class: RefreshTransient, fault: fault(oauthtest.HTMLPage(502))},
		{Name: "malformed json", Class: RefreshTransient, fault: fault(oauthtest.MalformedJSON())},
		{Name: "timeout", Class: RefreshTransient, fault: fault(oauthtest.Hang()), cut: true},
		{Name: "answer lost", Class: RefreshLost, fault: fault(oauthtest.LoseResponse()), cut: true},
		reject(oauth.CodeRefreshTokenExpired, states.ReasonExpired),
		reject(oauth.CodeRefreshTokenReused, states.ReasonReused),
		reject(oauth.CodeRefreshTokenInvalidated, states.ReasonRevoked),
		reject(oauth.CodeInvalidGrant, states.ReasonInvalidGrant),
		reject(oauth.CodeInvalidClient, states.ReasonClientRejected),
		reject(oauth.CodeUnauthorizedClient, states.ReasonClientRejected),
		{Name: "status 401", Class: RefreshPermanent, Reason: states.ReasonUnknown,
			fault: fault(oauthtest.Status(401))},
	}
}

// RefreshOutcomeGen generates outcomes for a redemption. Success is drawn
// about half the time, so that sequences get somewhere.
func RefreshOutcomeGen() *rapid.Generator[RefreshOutcome] {
	all := RefreshOutcomes()
	weighted := []RefreshOutcome{all[0], all[0], all[0], all[0], all[0], all[0], all[0], all[0],
		all[0], all[0], all[0], all[0], all[0], all[0], all[0], all[0], all[0], all[0], all[0], all[0]}
	weighted = append(weighted, all[1:]...)
	return rapid.SampledFrom(weighted)
}

// HostClass is how a host answers a request for new tokens.
type HostClass uint8

const (
	// HostTokens: new tokens for the workspace asked about.
	HostTokens HostClass = iota
	// HostOtherWorkspace: new tokens, but for another workspace.
	HostOtherWorkspace
	// HostError: the host says it cannot.
	HostError
	// HostBadIDToken: tokens whose id token does not parse.
	HostBadIDToken
	// HostHang: the host never answers; the manager's host timeout ends it.
	HostHang
	// HostUnregistered: no host refresher is registered.
	HostUnregistered
)

func (c HostClass) String() string {
	return [...]string{"tokens", "other workspace", "error", "bad id token", "hang", "unregistered"}[c]
}

// HostOutcomeGen generates host answers: new tokens most of the time, and a
// hang rarely (it costs the host timeout in real time).
func HostOutcomeGen() *rapid.Generator[HostClass] {
	answers := []HostClass{
		HostTokens, HostTokens, HostTokens, HostTokens, HostTokens, HostTokens, HostTokens,
		HostOtherWorkspace, HostOtherWorkspace, HostError, HostError, HostBadIDToken, HostUnregistered,
		HostTokens, HostTokens, HostTokens, HostTokens, HostOtherWorkspace, HostError,
	}
	answers = append(answers, answers...)
	return rapid.SampledFrom(append(answers, HostHang))
}

// likelyKinds are the events that usually follow in state s.
func likelyKinds(s states.State) []states.EventKind {
	switch s {
	case states.Fresh, states.Stale:
		return []states.EventKind{states.KindUnauthorized, states.KindTokenRequested, states.KindRefreshRequested}
	case states.Refreshing:
		return []states.EventKind{states.KindStoreReread, states.KindRefreshSucceeded, states.KindPersisted,
			states.KindRefreshFailed}
	case states.ExternalRefresh:
		return []states.EventKind{states.KindHostRefreshSucceeded, states.KindPersisted}
	}
	return []states.EventKind{states.KindLoginRequested, states.KindLoaded}
}
