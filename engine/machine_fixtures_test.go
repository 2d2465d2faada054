package engine_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// Fixtures for the Machine tests: credentials, policies, paths that bring a
// machine into each state, and a catalogue of events with the payloads that
// decide the table's guards. The machine never reads a clock, so every
// instant here derives from epoch. The names are specific on purpose: this
// package's other tests have fixtures of their own.

var epoch = time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)

// muchLater is after every expiry, age limit and backoff the fixtures
// produce.
var muchLater = epoch.Add(9 * 24 * time.Hour)

const (
	allowedWS = "ws-main"
	otherWS   = "ws-other"
)

// managedTokens returns OAuth tokens refreshed by credfsm, for account,
// whose access token lives one hour and expires at exp. The token values end
// in tag, so that two credentials are told apart in a diff.
func managedTokens(tag, account string, exp time.Time) states.Record {
	return states.Record{
		Mode: states.ModeManaged,
		Tokens: states.Tokens{
			IDToken:      states.NewSecret("id-" + tag),
			AccessToken:  states.NewSecret("at-" + tag),
			RefreshToken: states.NewSecret("rt-" + tag),
			AccountID:    account,
		},
		Claims:       states.Claims{Email: "dev@example.com", Plan: states.PlanPro, AccountID: account},
		AccessExpiry: exp,
		LastRefresh:  exp.Add(-time.Hour),
	}
}

// hostTokens returns OAuth tokens supplied and refreshed by the host.
func hostTokens(tag, account string, exp time.Time) states.Record {
	r := managedTokens(tag, account, exp)
	r.Mode = states.ModeExternal
	r.Tokens.RefreshToken = states.Secret{}
	return r
}

func keyRecord(tag string) states.Record {
	return states.Record{Mode: states.ModeAPIKey, APIKey: states.NewSecret("sk-" + tag)}
}

// Credentials as seen at epoch.
var (
	recFresh        = managedTokens("1", allowedWS, epoch.Add(time.Hour))
	recStale        = managedTokens("1s", allowedWS, epoch.Add(2*time.Minute))
	recOtherAccount = managedTokens("other", otherWS, epoch.Add(time.Hour))
	recHostFresh    = hostTokens("h1", allowedWS, epoch.Add(time.Hour))
	recHostStale    = hostTokens("h1s", allowedWS, epoch.Add(2*time.Minute))
	recHostExpired  = hostTokens("h1x", allowedWS, epoch.Add(-time.Minute))
	recAPIKey       = keyRecord("main")

	// recUndated has neither an expiry nor a last-refresh time.
	recUndated = func() states.Record {
		r := managedTokens("u", allowedWS, time.Time{})
		r.LastRefresh = time.Time{}
		return r
	}()
)

var (
	errStoreUnreadable = fmt.Errorf("storage: auth.json: %w", states.ErrUnreadable)
	errLockBusy        = fmt.Errorf("storage: %w", states.ErrLockTimeout)
	errRefresherDown   = errors.New("host refresher: connection refused")
	errCASConflict     = fmt.Errorf("storage: %w", states.ErrConflict)
)

// testPolicies are the policies the tests run under. Every credential above
// belongs to allowedWS, so a restriction bites only where a test means it to.
var testPolicies = []struct {
	name   string
	policy transitions.Policy
}{
	{"unrestricted", transitions.Policy{}},
	{"forced_workspace", transitions.Policy{ForcedWorkspace: allowedWS}},
	{"forced_chatgpt", transitions.Policy{ForcedMethod: transitions.MethodChatGPT}},
	{"forced_api", transitions.Policy{ForcedMethod: transitions.MethodAPI}},
}

// Which policies a scenario's path is meant for: tokens are refused when API
// keys are forced, and the other way round.
var (
	tokenPolicies = []string{"unrestricted", "forced_workspace", "forced_chatgpt"}
	keyPolicies   = []string{"unrestricted", "forced_workspace", "forced_api"}
	everyPolicy   = []string{"unrestricted", "forced_workspace", "forced_chatgpt", "forced_api"}
)

// A pathStep builds the next event of a path from the extended state the
// machine is in, so that outcomes carry the current generation.
type pathStep func(ext states.Extended) states.Event

func onLoaded(rec states.Record, v states.Version) pathStep {
	return func(states.Extended) states.Event { return states.Loaded{At: epoch, Record: rec, Version: v} }
}

func onLoadFailed(states.Extended) states.Event {
	return states.Loaded{At: epoch, Version: "v-bad", Err: errStoreUnreadable}
}

func onLogin(rec states.Record) pathStep {
	return func(states.Extended) states.Event { return states.LoginRequested{At: epoch, Record: rec} }
}

func onLogout(states.Extended) states.Event { return states.LogoutRequested{At: epoch} }

func onCleared(ext states.Extended) states.Event {
	return states.StoresCleared{At: epoch, Generation: ext.Generation}
}

func on401(ext states.Extended) states.Event {
	return states.Unauthorized{At: epoch, Generation: ext.Generation}
}

// on401AfterCooldown is a 401 for the current tokens once the cooldown of
// a recovery at epoch has passed: it starts a recovery of its own.
func on401AfterCooldown(ext states.Extended) states.Event {
	return states.Unauthorized{At: epoch.Add(transitions.DefaultRecoveryCooldown), Generation: ext.Generation}
}

func onRefreshRequested(states.Extended) states.Event { return states.RefreshRequested{At: epoch} }

func onTokenAt(at time.Time) pathStep {
	return func(states.Extended) states.Event { return states.TokenRequested{At: at} }
}

// onRereadUnchanged: the store still holds what the machine knows.
func onRereadUnchanged(ext states.Extended) states.Event {
	return states.StoreReread{At: epoch, Generation: ext.Generation, Record: ext.Record, Version: ext.Version}
}

func onReread(rec states.Record, v states.Version) pathStep {
	return func(ext states.Extended) states.Event {
		return states.StoreReread{At: epoch, Generation: ext.Generation, Record: rec, Version: v}
	}
}

// grantRotated is what a token endpoint that rotates refresh tokens returns
// at the given instant.
func grantRotated(tag string, at time.Time) states.Grant {
	return states.Grant{
		IDToken:      states.NewSecret("id-" + tag),
		AccessToken:  states.NewSecret("at-" + tag),
		RefreshToken: states.NewSecret("rt-" + tag),
		Claims:       states.Claims{Email: "dev@example.com", Plan: states.PlanPro, AccountID: allowedWS},
		AccessExpiry: at.Add(time.Hour),
	}
}

func onRefreshed(g states.Grant) pathStep {
	return func(ext states.Extended) states.Event {
		return states.RefreshSucceeded{At: epoch, Generation: ext.Generation, Grant: g}
	}
}

func onRefreshFailed(ext states.Extended) states.Event {
	return states.RefreshFailed{At: epoch, Generation: ext.Generation, Jitter: 0.5,
		Err: &states.RefreshError{Status: 503, Detail: "upstream unavailable"}}
}

func onRejected(r states.Reason) pathStep {
	return func(ext states.Extended) states.Event {
		return states.RefreshRejected{At: epoch, Generation: ext.Generation,
			Err: &states.RefreshError{Permanent: true, Reason: r, Status: 401, Code: "refresh_token_reused"}}
	}
}

func onHostRefreshed(g states.Grant) pathStep {
	return func(ext states.Extended) states.Event {
		return states.HostRefreshSucceeded{At: epoch, Generation: ext.Generation, Grant: g}
	}
}

func onHostFailed(ext states.Extended) states.Event {
	return states.HostRefreshFailed{At: epoch, Generation: ext.Generation, Err: errRefresherDown, Jitter: 0.5}
}

func onPersisted(v states.Version) pathStep {
	return func(ext states.Extended) states.Event {
		return states.Persisted{At: epoch, Generation: ext.Generation, Version: v}
	}
}

func onPersistFailed(ext states.Extended) states.Event {
	return states.PersistFailed{At: epoch, Generation: ext.Generation, Conflict: true, Err: errCASConflict}
}

func onWokeMuchLater(ext states.Extended) states.Event {
	return states.Woke{At: muchLater, Generation: ext.Generation}
}

// reachByPath builds a machine under p and drives it along path with real
// Steps from the initial state, failing the test if any step is refused.
func reachByPath(t testing.TB, p transitions.Policy, path ...pathStep) *engine.Machine {
	t.Helper()
	m := engine.NewMachine(nil, p)
	for i, s := range path {
		ev := s(m.Extended())
		if _, err := m.Step(ev); err != nil {
			t.Fatalf("path step %d (%v) from %v: %v", i+1, ev.Kind(), m.State(), err)
		}
	}
	return m
}

// stepOK steps ev and fails the test if the machine refuses it.
func stepOK(t testing.TB, m *engine.Machine, ev states.Event) engine.Result {
	t.Helper()
	res, err := m.Step(ev)
	if err != nil {
		t.Fatalf("Step(%v) in %v: %v", ev.Kind(), m.State(), err)
	}
	return res
}

// A machineScenario is a machine in one state with one particular extended
// state, reached by a path of real events from the initial state.
type machineScenario struct {
	name  string
	state states.State
	path  []pathStep
	// policies the path is meant for; nil means tokenPolicies.
	policies []string
}

func pathOf(s ...pathStep) []pathStep { return s }

// machineScenarios are paths into every state, and into the variants of a
// state that the guards tell apart: managed or host-managed, backing off or
// not, a record kept or cleared, a generation that has moved on.
var machineScenarios = []machineScenario{
	{name: "initial", state: states.LoggedOut, policies: everyPolicy},
	{name: "signed_out", state: states.LoggedOut, policies: everyPolicy,
		path: pathOf(onLoaded(recFresh, "v1"), onLogout, onCleared)},
	{name: "key", state: states.APIKey, policies: keyPolicies,
		path: pathOf(onLoaded(recAPIKey, "v1"))},
	{name: "key_signed_in", state: states.APIKey, policies: keyPolicies,
		path: pathOf(onLoaded(recFresh, "v1"), onLogin(recAPIKey), onPersisted("v2"))},
	{name: "managed", state: states.Fresh, path: pathOf(onLoaded(recFresh, "v1"))},
	{name: "managed_refreshed", state: states.Fresh,
		path: pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged,
			onRefreshed(grantRotated("2", epoch)), onPersisted("v2"))},
	{name: "managed_unsaved", state: states.Fresh,
		path: pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged,
			onRefreshed(grantRotated("2", epoch)), onPersistFailed)},
	{name: "managed_unsaved", state: states.Stale,
		path: pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged,
			onRefreshed(grantRotated("2", epoch)), onPersistFailed, onWokeMuchLater)},
	{name: "managed_undated", state: states.Fresh, path: pathOf(onLoaded(recUndated, "v1"))},
	{name: "host", state: states.Fresh, path: pathOf(onLoaded(recHostFresh, "v1"))},
	{name: "managed", state: states.Stale, path: pathOf(onLoaded(recStale, "v1"))},
	{name: "managed_backing_off", state: states.Stale,
		path: pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged, onRefreshFailed)},
	{name: "host", state: states.Stale, path: pathOf(onLoaded(recHostStale, "v1"))},
	{name: "host_expired", state: states.Stale, path: pathOf(onLoaded(recHostExpired, "v1"))},
	{name: "host_backing_off", state: states.Stale,
		path: pathOf(onLoaded(recHostExpired, "v1"), onRefreshRequested, onHostFailed)},
	{name: "locking", state: states.Refreshing, path: pathOf(onLoaded(recFresh, "v1"), on401)},
	{name: "redeeming", state: states.Refreshing,
		path: pathOf(onLoaded(recStale, "v1"), onTokenAt(epoch), onRereadUnchanged)},
	{name: "saving", state: states.Refreshing,
		path: pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged,
			onRefreshed(grantRotated("2", epoch)))},
	{name: "asking", state: states.ExternalRefresh, path: pathOf(onLoaded(recHostFresh, "v1"), on401)},
	{name: "saving", state: states.ExternalRefresh,
		path: pathOf(onLoaded(recHostExpired, "v1"), onTokenAt(epoch),
			onHostRefreshed(grantRotated("h2", epoch)))},
	{name: "rejected", state: states.FailedPermanent,
		path: pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged, onRejected(states.ReasonReused))},
	{name: "unreadable", state: states.FailedPermanent, policies: everyPolicy, path: pathOf(onLoadFailed)},
	{name: "restricted_workspace", state: states.FailedPermanent, policies: []string{"forced_workspace"},
		path: pathOf(onLoaded(recOtherAccount, "v1"))},
	{name: "restricted_key", state: states.FailedPermanent, policies: []string{"forced_chatgpt"},
		path: pathOf(onLoaded(recAPIKey, "v1"))},
}

func (sc machineScenario) meantFor(policy string) bool {
	ps := sc.policies
	if ps == nil {
		ps = tokenPolicies
	}
	return slices.Contains(ps, policy)
}

// machine brings a new machine along the scenario's path under p and checks
// it ended where the scenario says.
func (sc machineScenario) machine(t testing.TB, p transitions.Policy) *engine.Machine {
	t.Helper()
	m := reachByPath(t, p, sc.path...)
	if m.State() != sc.state {
		t.Fatalf("scenario %s/%s ended in %v", sc.state, sc.name, m.State())
	}
	return m
}

// An eventVariant is one representative event of a kind, named for what
// sets it apart from the others of its kind.
type eventVariant struct {
	name string
	ev   states.Event
}

// eventCatalogue returns, for a machine with extended state ext, events of
// every kind with the payloads that decide the guards: current and older
// generations; fresh, stale, expired, unreadable and restricted credentials;
// a store that changed or did not; grants with and without a rotated refresh
// token. Outcomes carry the current generation.
func eventCatalogue(ext states.Extended) []eventVariant {
	g := ext.Generation
	older := g - 1
	if g == 0 {
		older = g + 1 // any other generation is "not current"
	}
	rec := ext.Record

	// The instant the held credential turns stale (but has not expired).
	staleWindow := epoch.Add(time.Hour)
	if at, ok := (transitions.Policy{}).StaleAt(rec); ok {
		staleWindow = at.Add(time.Second)
	}

	rotated := grantRotated("r", epoch)
	unrotated := rotated
	unrotated.RefreshToken = states.Secret{}
	badID := rotated
	badID.Claims = states.Claims{}
	badID.IDTokenErr = errors.New("oauth: id token: malformed JWT")
	foreign := grantRotated("f", epoch)
	foreign.Claims.AccountID = otherWS

	newer := managedTokens("n", allowedWS, epoch.Add(time.Hour))
	newerStale := managedTokens("ns", allowedWS, epoch.Add(time.Minute))
	otherStale := managedTokens("os", otherWS, epoch.Add(time.Minute))
	reread := func(rec states.Record, v states.Version) states.StoreReread {
		return states.StoreReread{At: epoch, Generation: g, Record: rec, Version: v}
	}

	vs := []eventVariant{
		{"nothing", states.Loaded{At: epoch, Version: states.NoVersion}},
		{"api_key", states.Loaded{At: epoch, Record: recAPIKey, Version: "v-key"}},
		{"fresh_tokens", states.Loaded{At: epoch, Record: newer, Version: "v-new"}},
		{"stale_tokens", states.Loaded{At: epoch, Record: newerStale, Version: "v-new"}},
		{"undated_tokens", states.Loaded{At: epoch, Record: recUndated, Version: "v-new"}},
		{"host_tokens", states.Loaded{At: epoch, Record: recHostFresh, Version: "v-host"}},
		{"unreadable", states.Loaded{At: epoch, Version: "v-bad", Err: errStoreUnreadable}},
		{"other_workspace", states.Loaded{At: epoch, Record: recOtherAccount, Version: "v-other"}},
		{"same_version", states.Loaded{At: epoch, Record: rec, Version: ext.Version}},
		{"api_key_from_env", states.Loaded{At: epoch, Record: keyRecord("env"), FromEnv: true}},

		{"now", states.TokenRequested{At: epoch}},
		{"stale_window", states.TokenRequested{At: staleWindow}},
		{"much_later", states.TokenRequested{At: muchLater}},

		{"now", states.RefreshRequested{At: epoch}},

		{"current", states.Unauthorized{At: epoch, Generation: g}},
		{"current_much_later", states.Unauthorized{At: muchLater, Generation: g}},
		{"older", states.Unauthorized{At: epoch, Generation: older}},

		{"api_key", states.LoginRequested{At: epoch, Record: keyRecord("login")}},
		{"fresh_tokens", states.LoginRequested{At: epoch, Record: newer}},
		{"stale_tokens", states.LoginRequested{At: epoch, Record: newerStale}},
		{"host_tokens", states.LoginRequested{At: epoch, Record: recHostFresh}},
		{"other_workspace", states.LoginRequested{At: epoch, Record: recOtherAccount}},

		{"now", states.LogoutRequested{At: epoch}},

		{"current", states.Woke{At: epoch, Generation: g}},
		{"current_stale_window", states.Woke{At: staleWindow, Generation: g}},
		{"current_much_later", states.Woke{At: muchLater, Generation: g}},
		{"older_much_later", states.Woke{At: muchLater, Generation: older}},

		{"empty", reread(states.Record{}, states.NoVersion)},
		{"unchanged", reread(rec, ext.Version)},
		{"resaved", reread(rec, ext.Version+"-resaved")},
		{"rotated_fresh", reread(newer, "v-rotated")},
		{"rotated_stale", reread(newerStale, "v-rotated")},
		{"other_account_fresh", reread(recOtherAccount, "v-other")},
		{"other_account_stale", reread(otherStale, "v-other")},
		{"api_key", reread(recAPIKey, "v-key")},

		{"unreadable", states.RereadFailed{At: epoch, Generation: g, Unreadable: true,
			Err: errStoreUnreadable}},
		{"lock_timeout", states.RereadFailed{At: epoch, Generation: g, Err: errLockBusy}},

		{"rotated", states.RefreshSucceeded{At: epoch, Generation: g, Grant: rotated}},
		{"not_rotated", states.RefreshSucceeded{At: epoch, Generation: g, Grant: unrotated}},
		{"bad_id_token", states.RefreshSucceeded{At: epoch, Generation: g, Grant: badID}},

		{"server_error", states.RefreshFailed{At: epoch, Generation: g, Jitter: 0.5,
			Err: &states.RefreshError{Status: 503}}},
		{"retry_after", states.RefreshFailed{At: epoch, Generation: g, Jitter: 0.5,
			Err: &states.RefreshError{Status: 429, RetryAfter: 10 * time.Minute}}},

		{"reused", states.RefreshRejected{At: epoch, Generation: g,
			Err: &states.RefreshError{Permanent: true, Reason: states.ReasonReused, Status: 401}}},
		{"unclassified", states.RefreshRejected{At: epoch, Generation: g}},

		{"same_workspace", states.HostRefreshSucceeded{At: epoch, Generation: g,
			Grant: grantRotated("hr", epoch)}},
		{"other_workspace", states.HostRefreshSucceeded{At: epoch, Generation: g, Grant: foreign}},
		{"bad_id_token", states.HostRefreshSucceeded{At: epoch, Generation: g, Grant: badID}},

		{"host_down", states.HostRefreshFailed{At: epoch, Generation: g, Err: errRefresherDown, Jitter: 0.5}},

		{"saved", states.Persisted{At: epoch, Generation: g, Version: "v-saved"}},

		{"conflict", states.PersistFailed{At: epoch, Generation: g, Conflict: true, Err: errCASConflict}},

		{"all", states.StoresCleared{At: epoch, Generation: g}},
		{"some_failed", states.StoresCleared{At: epoch, Generation: g, Err: errors.New("keyring: locked")}},
	}
	if !rec.IsZero() {
		same := states.Loaded{At: epoch, Record: rec, Version: ext.Version}
		vs = append(vs, eventVariant{"same_credential", same})
	}
	return vs
}

// firstRule is the table read by hand: the first rule, in table order, that
// applies in state s to ev's kind and whose guard passes. hasRules reports
// whether the table has any rule for the pair at all.
func firstRule(d *transitions.Table, p transitions.Policy, s states.State, ext states.Extended,
	ev states.Event) (r transitions.Rule, ok, hasRules bool) {
	in := transitions.Input{State: s, Ext: &ext, Event: ev, Policy: &p}
	for _, r := range d.Rules() {
		if r.On != ev.Kind() || !slices.Contains(r.From, s) {
			continue
		}
		hasRules = true
		if r.Guard.Test == nil || r.Guard.Test(in) {
			return r, true, true
		}
	}
	return transitions.Rule{}, false, hasRules
}
