package engine_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// The numbered behaviours of the credential machine, each as a table of
// cases: a path from the initial state, one event, and what must follow.

// behaviour is one case: the machine reached by path under policy, stepped
// with event, must fire want and emit exactly the commands returned by
// commands (none when nil); check asserts more about the extended state.
type behaviour struct {
	name     string
	policy   transitions.Policy
	path     []pathStep
	event    pathStep
	want     outcome
	commands commandsFn
	check    checkFn
}

// commandsFn returns the commands a step must emit, which may depend on the
// extended state before and after it (generations, the record held).
type commandsFn func(before, after states.Extended) []effects.Command

// checkFn asserts something about the extended state a step left.
type checkFn func(t *testing.T, before, after states.Extended)

func runBehaviours(t *testing.T, cases []behaviour) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := reachByPath(t, tc.policy, tc.path...)
			before := m.Extended()
			res := stepOK(t, m, tc.event(before))
			after := m.Extended()

			got := outcome{res.Rule, res.Event, res.From, res.To}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("step (-want +got):\n%s", diff)
			}
			if m.State() != tc.want.To {
				t.Errorf("State() = %v, want %v", m.State(), tc.want.To)
			}
			var want []effects.Command
			if tc.commands != nil {
				want = tc.commands(before, after)
			}
			if diff := cmp.Diff(want, res.Commands, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
			if after.Generation < before.Generation {
				t.Errorf("generation went back from %d to %d", before.Generation, after.Generation)
			}
			if tc.check != nil {
				tc.check(t, before, after)
			}
		})
	}
}

// rule is the outcome of firing the table's rule id from one state to
// another.
func rule(id string, from, to states.State) outcome {
	r, ok := transitions.Default().Rule(id)
	if !ok {
		panic("no rule " + id)
	}
	return outcome{Rule: id, Event: r.On, From: from, To: to}
}

// just is a step or event that does not depend on the machine.
func just(ev states.Event) pathStep { return func(states.Extended) states.Event { return ev } }

// timed returns managed tokens with the given expiry and last refresh.
func timed(exp, last time.Time) states.Record {
	r := managedTokens("t", allowedWS, exp)
	r.AccessExpiry = exp
	r.LastRefresh = last
	return r
}

// staleAtFresh is when recFresh, recHostFresh and every token obtained at
// epoch for an hour turn stale: five minutes before they expire.
var staleAtFresh = epoch.Add(55 * time.Minute)

// The commands of the table, stamped with the generation the step leaves
// (after) or, for steps that keep it, the one before.

func lockAndReread(before, _ states.Extended) []effects.Command {
	return []effects.Command{effects.LockAndReread{Generation: before.Generation}}
}

func askHost(before, _ states.Extended) []effects.Command {
	return []effects.Command{effects.AskHost{Generation: before.Generation, PreviousAccountID: allowedWS}}
}

func notify(_, after states.Extended) []effects.Command {
	return []effects.Command{effects.NotifyObservers{Generation: after.Generation}}
}

func deleteStores(_, after states.Extended) []effects.Command {
	return []effects.Command{effects.DeleteStores{Generation: after.Generation}}
}

func wakeAt(at time.Time) commandsFn {
	return func(_, after states.Extended) []effects.Command {
		return []effects.Command{effects.WakeAt{Generation: after.Generation, At: at}}
	}
}

func redeem(rt string) commandsFn {
	return func(_, after states.Extended) []effects.Command {
		return []effects.Command{effects.RedeemRefreshToken{
			Generation: after.Generation, RefreshToken: states.NewSecret(rt)}}
	}
}

func persist(rec states.Record, expected states.Version) commandsFn {
	return func(_, after states.Extended) []effects.Command {
		return []effects.Command{effects.PersistRecord{
			Generation: after.Generation, Record: rec, Expected: expected}}
	}
}

// settle is how a waiting state ends: the lock released, the waiters woken,
// and, when it ends in fresh, a timer for when the tokens turn stale.
func settle(wake *time.Time) commandsFn {
	return func(_, after states.Extended) []effects.Command {
		c := []effects.Command{effects.ReleaseLock{}, effects.NotifyObservers{Generation: after.Generation}}
		if wake != nil {
			c = append(c, effects.WakeAt{Generation: after.Generation, At: *wake})
		}
		return c
	}
}

// then runs one commandsFn after another.
func then(fs ...commandsFn) commandsFn {
	return func(before, after states.Extended) []effects.Command {
		var c []effects.Command
		for _, f := range fs {
			c = append(c, f(before, after)...)
		}
		return c
	}
}

func wantRecord(t *testing.T, got, want states.Record) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
}

func wantNewGeneration(t *testing.T, before, after states.Extended) {
	t.Helper()
	if after.Generation <= before.Generation {
		t.Errorf("generation %d -> %d, want a new one", before.Generation, after.Generation)
	}
}

func wantSameGeneration(t *testing.T, before, after states.Extended) {
	t.Helper()
	if after.Generation != before.Generation {
		t.Errorf("generation %d -> %d, want it kept", before.Generation, after.Generation)
	}
}

// wantRecoveryNoted: a 401 at epoch started a recovery of the generation
// it refused, and nothing else changed.
func wantRecoveryNoted(t *testing.T, before, after states.Extended) {
	t.Helper()
	before.RecoveryAt, before.RecoveryFrom = epoch, before.Generation
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("extended state (-want +got):\n%s", diff)
	}
}

func wantUnchanged(t *testing.T, before, after states.Extended) {
	t.Helper()
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("extended state changed (-before +after):\n%s", diff)
	}
}

func wantFailure(r states.Reason) checkFn {
	return func(t *testing.T, before, after states.Extended) {
		t.Helper()
		if after.Failure != r {
			t.Errorf("Failure = %v, want %v", after.Failure, r)
		}
	}
}

// Behaviour 1: what a load finds decides the state. An unreadable store is a
// permanent failure, never a silent logout, and nothing is deleted.
func TestBehaviourLoad(t *testing.T) {
	unreadable := func(t *testing.T, before, after states.Extended) {
		wantFailure(states.ReasonUnreadableStore)(t, before, after)
		if !strings.Contains(after.LastError, "unreadable") {
			t.Errorf("LastError = %q, want the store's error", after.LastError)
		}
		if !after.Record.IsZero() {
			t.Errorf("the unreadable store left a credential behind: %v", after.Record)
		}
		wantNewGeneration(t, before, after)
	}
	adopted := func(rec states.Record) checkFn {
		return func(t *testing.T, before, after states.Extended) {
			wantRecord(t, after.Record, rec)
			if after.Version != "v1" {
				t.Errorf("Version = %q, want v1", after.Version)
			}
			wantNewGeneration(t, before, after)
		}
	}
	freshPath := pathOf(onLoaded(recFresh, "v1"))

	runBehaviours(t, []behaviour{
		{
			name:  "load/nothing_stored_is_logged_out",
			event: onLoaded(states.Record{}, states.NoVersion),
			want:  rule("load_nothing", states.LoggedOut, states.LoggedOut),
			check: func(t *testing.T, before, after states.Extended) {
				wantRecord(t, after.Record, states.Record{})
			},
		},
		{
			name:  "load/api_key",
			event: onLoaded(recAPIKey, "v1"),
			want:  rule("load_api_key", states.LoggedOut, states.APIKey),
			check: adopted(recAPIKey),
		},
		{
			name:     "load/managed_fresh_tokens",
			event:    onLoaded(recFresh, "v1"),
			want:     rule("load_fresh", states.LoggedOut, states.Fresh),
			commands: wakeAt(staleAtFresh),
			check:    adopted(recFresh),
		},
		{
			name:  "load/managed_stale_tokens",
			event: onLoaded(recStale, "v1"),
			want:  rule("load_stale", states.LoggedOut, states.Stale),
			check: adopted(recStale),
		},
		{
			name:     "load/host_managed_fresh_tokens",
			event:    onLoaded(recHostFresh, "v1"),
			want:     rule("load_fresh", states.LoggedOut, states.Fresh),
			commands: wakeAt(staleAtFresh),
			check:    adopted(recHostFresh),
		},
		{
			name:  "load/host_managed_stale_tokens",
			event: onLoaded(recHostStale, "v1"),
			want:  rule("load_stale", states.LoggedOut, states.Stale),
			check: adopted(recHostStale),
		},
		{
			name:  "load/host_managed_expired_tokens",
			event: onLoaded(recHostExpired, "v1"),
			want:  rule("load_stale", states.LoggedOut, states.Stale),
		},
		{
			name:  "load/unreadable_store_is_permanent_not_logout",
			event: onLoadFailed,
			want:  rule("load_unreadable", states.LoggedOut, states.FailedPermanent),
			check: unreadable,
		},
		{
			name:  "load/unreadable_store_while_fresh_is_permanent",
			path:  freshPath,
			event: onLoadFailed,
			want:  rule("load_unreadable", states.Fresh, states.FailedPermanent),
			check: unreadable,
		},
		{
			name:  "load/unreadable_store_while_api_key_is_permanent",
			path:  pathOf(onLoaded(recAPIKey, "v1")),
			event: onLoadFailed,
			want:  rule("load_unreadable", states.APIKey, states.FailedPermanent),
			check: unreadable,
		},
		{
			name:  "load/same_credential_again_keeps_generation",
			path:  freshPath,
			event: onLoaded(recFresh, "v1"),
			want:  rule("load_fresh", states.Fresh, states.Fresh),
			commands: func(before, _ states.Extended) []effects.Command {
				return []effects.Command{effects.WakeAt{Generation: before.Generation, At: staleAtFresh}}
			},
			check: wantSameGeneration,
		},
		{
			name:  "load/store_emptied_while_fresh_is_logged_out",
			path:  freshPath,
			event: onLoaded(states.Record{}, states.NoVersion),
			want:  rule("load_nothing", states.Fresh, states.LoggedOut),
			check: wantNewGeneration,
		},
	})
}

// Behaviour 2: staleness, seen through the machine. The window and the
// backoff arithmetic are specified in the transitions package's tests.
func TestBehaviourStaleness(t *testing.T) {
	const day = 24 * time.Hour
	hourAgo := epoch.Add(-time.Hour)
	woke := func(at time.Time, older uint64) pathStep {
		return func(x states.Extended) states.Event {
			return states.Woke{At: at, Generation: x.Generation - older}
		}
	}
	runBehaviours(t, []behaviour{
		{
			name:  "staleness/just_outside_default_skew_is_fresh",
			event: onLoaded(timed(epoch.Add(5*time.Minute+time.Second), hourAgo), "v1"),
			want:  rule("load_fresh", states.LoggedOut, states.Fresh),
			// It wakes one second from now, when the window opens.
			commands: wakeAt(epoch.Add(time.Second)),
		},
		{
			name:     "staleness/exactly_at_default_skew_is_fresh",
			event:    onLoaded(timed(epoch.Add(5*time.Minute), hourAgo), "v1"),
			want:     rule("load_fresh", states.LoggedOut, states.Fresh),
			commands: wakeAt(epoch),
		},
		{
			name:  "staleness/inside_default_skew_is_stale",
			event: onLoaded(timed(epoch.Add(5*time.Minute-time.Second), hourAgo), "v1"),
			want:  rule("load_stale", states.LoggedOut, states.Stale),
		},
		{
			name:     "staleness/configured_skew_is_fresh_outside_it",
			policy:   transitions.Policy{Skew: time.Minute},
			event:    onLoaded(timed(epoch.Add(2*time.Minute), hourAgo), "v1"),
			want:     rule("load_fresh", states.LoggedOut, states.Fresh),
			commands: wakeAt(epoch.Add(time.Minute)),
		},
		{
			name:   "staleness/configured_skew_is_stale_inside_it",
			policy: transitions.Policy{Skew: 10 * time.Minute},
			event:  onLoaded(timed(epoch.Add(9*time.Minute), hourAgo), "v1"),
			want:   rule("load_stale", states.LoggedOut, states.Stale),
		},
		{
			name:     "staleness/no_expiry_refreshed_exactly_8_days_ago_is_fresh",
			event:    onLoaded(timed(time.Time{}, epoch.Add(-8*day)), "v1"),
			want:     rule("load_fresh", states.LoggedOut, states.Fresh),
			commands: wakeAt(epoch),
		},
		{
			name:  "staleness/no_expiry_refreshed_over_8_days_ago_is_stale",
			event: onLoaded(timed(time.Time{}, epoch.Add(-8*day-time.Second)), "v1"),
			want:  rule("load_stale", states.LoggedOut, states.Stale),
		},
		{
			// Nothing turns such tokens stale by time, so no timer is set.
			name:  "staleness/no_expiry_and_no_last_refresh_is_usable",
			event: onLoaded(recUndated, "v1"),
			want:  rule("load_fresh", states.LoggedOut, states.Fresh),
		},
		{
			// Six minutes of life under a five-minute skew: stale from
			// birth without the cap, stale after three minutes with it.
			name:     "staleness/short_lived_token_is_capped_at_half_its_lifetime",
			event:    onLoaded(timed(epoch.Add(5*time.Minute), epoch.Add(-time.Minute)), "v1"),
			want:     rule("load_fresh", states.LoggedOut, states.Fresh),
			commands: wakeAt(epoch.Add(2 * time.Minute)),
		},
		{
			name:  "staleness/timer_at_the_stale_moment_changes_nothing",
			path:  pathOf(onLoaded(recFresh, "v1")),
			event: woke(staleAtFresh, 0),
			want:  rule("woke_ignored", states.Fresh, states.Fresh),
			check: wantUnchanged,
		},
		{
			name:  "staleness/timer_after_the_stale_moment_turns_stale",
			path:  pathOf(onLoaded(recFresh, "v1")),
			event: woke(staleAtFresh.Add(time.Second), 0),
			want:  rule("woke_turned_stale", states.Fresh, states.Stale),
			check: wantUnchanged,
		},
		{
			name: "staleness/timer_of_an_older_generation_is_ignored",
			path: pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged,
				onRefreshed(grantRotated("2", epoch)), onPersisted("v2")),
			event: woke(muchLater, 1),
			want:  rule("woke_ignored", states.Fresh, states.Fresh),
			check: wantUnchanged,
		},
	})
}

// restingScenarios are the states in which logins and logouts are taken,
// each reached by a path.
var restingScenarios = []struct {
	name string
	path []pathStep
}{
	{"logged_out", nil},
	{"api_key", pathOf(onLoaded(recAPIKey, "v1"))},
	{"fresh", pathOf(onLoaded(recFresh, "v1"))},
	{"stale", pathOf(onLoaded(recStale, "v1"))},
	{"stale_backing_off", pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged, onRefreshFailed)},
	{"failed_permanent", pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged,
		onRejected(states.ReasonRevoked))},
	{"failed_permanent_unreadable", pathOf(onLoadFailed)},
}

// Behaviour 3: a login of any kind from any resting state persists the new
// credential unconditionally and starts a new generation with a clean
// slate; a logout from any resting state deletes every store.
func TestBehaviourLoginAndLogout(t *testing.T) {
	logins := []struct {
		name string
		rec  states.Record
		to   states.State
		rule string
		wake bool
	}{
		{"api_key", keyRecord("login"), states.APIKey, "login_api_key", false},
		{"fresh_tokens", managedTokens("login", allowedWS, epoch.Add(time.Hour)),
			states.Fresh, "login_fresh", true},
		{"stale_tokens", managedTokens("login", allowedWS, epoch.Add(time.Minute)),
			states.Stale, "login_stale", false},
		{"host_tokens", hostTokens("login", allowedWS, epoch.Add(time.Hour)),
			states.Fresh, "login_fresh", true},
	}
	var cases []behaviour
	for _, from := range restingScenarios {
		fromState := reachByPath(t, transitions.Policy{}, from.path...).State()
		for _, l := range logins {
			commands := persist(l.rec, states.AnyVersion)
			if l.wake {
				commands = then(commands, wakeAt(staleAtFresh))
			}
			cases = append(cases, behaviour{
				name:     "login/" + l.name + "/from_" + from.name,
				path:     from.path,
				event:    onLogin(l.rec),
				want:     rule(l.rule, fromState, l.to),
				commands: commands,
				check: func(t *testing.T, before, after states.Extended) {
					wantNewGeneration(t, before, after)
					clean := states.Extended{Record: l.rec, Version: before.Version,
						Generation: after.Generation}
					if diff := cmp.Diff(clean, after); diff != "" {
						t.Errorf("a login must start with a clean slate (-want +got):\n%s", diff)
					}
				},
			})
		}
		cases = append(cases, behaviour{
			name:     "logout/from_" + from.name,
			path:     from.path,
			event:    onLogout,
			want:     rule("logout", fromState, states.LoggedOut),
			commands: deleteStores,
			check: func(t *testing.T, before, after states.Extended) {
				want := states.Extended{Generation: before.Generation + 1, Version: before.Version}
				if diff := cmp.Diff(want, after); diff != "" {
					t.Errorf("a logout keeps only the store version (-want +got):\n%s", diff)
				}
			},
		})
	}
	cases = append(cases,
		behaviour{
			name:     "login/same_credential_again_is_a_new_generation",
			path:     pathOf(onLoaded(recAPIKey, "v1")),
			event:    onLogin(recAPIKey),
			want:     rule("login_api_key", states.APIKey, states.APIKey),
			commands: persist(recAPIKey, states.AnyVersion),
			check:    wantNewGeneration,
		},
		behaviour{
			name:  "logout/stores_cleared_forgets_the_version",
			path:  pathOf(onLoaded(recFresh, "v1"), onLogout),
			event: onCleared,
			want:  rule("stores_cleared", states.LoggedOut, states.LoggedOut),
			check: func(t *testing.T, before, after states.Extended) {
				if after.Version != states.NoVersion {
					t.Errorf("Version = %q after the stores were cleared, want none", after.Version)
				}
				wantSameGeneration(t, before, after)
			},
		},
	)
	runBehaviours(t, cases)

	// While an outcome is awaited, sign-ins and sign-outs wait for it; the
	// machine refuses them rather than abandon a held store lock.
	for _, sc := range machineScenarios {
		if !sc.state.Waiting() {
			continue
		}
		for _, ev := range []states.Event{
			states.LoginRequested{At: epoch, Record: recAPIKey},
			states.LogoutRequested{At: epoch},
		} {
			name := ev.Kind().String() + "/waits_in_" + sc.state.String() + "_" + sc.name
			t.Run(name, func(t *testing.T) {
				m := sc.machine(t, transitions.Policy{})
				before := m.Extended()
				res, err := m.Step(ev)
				checkNotPermitted(t, m, sc.state, before, ev.Kind(), res, err)
			})
		}
	}
}

// Behaviour 4: a token is needed while the tokens are stale. Managed tokens
// are refreshed (the store is locked and re-read first); host-managed tokens
// are served until they expire, and only then is the host asked.
func TestBehaviourTokenWhileStale(t *testing.T) {
	staleWindow := staleAtFresh.Add(time.Minute)
	runBehaviours(t, []behaviour{
		{
			name:     "token/managed_stale_refreshes",
			path:     pathOf(onLoaded(recStale, "v1")),
			event:    onTokenAt(epoch),
			want:     rule("token_stale_refresh", states.Stale, states.Refreshing),
			commands: lockAndReread,
			check:    wantUnchanged,
		},
		{
			name:     "token/managed_fresh_turned_stale_refreshes",
			path:     pathOf(onLoaded(recFresh, "v1")),
			event:    onTokenAt(staleWindow),
			want:     rule("token_refresh_due", states.Fresh, states.Refreshing),
			commands: lockAndReread,
			check:    wantUnchanged,
		},
		{
			name:  "token/managed_fresh_is_served",
			path:  pathOf(onLoaded(recFresh, "v1")),
			event: onTokenAt(staleAtFresh),
			want:  rule("token_fresh", states.Fresh, states.Fresh),
			check: wantUnchanged,
		},
		{
			name:  "token/host_managed_stale_not_expired_is_served",
			path:  pathOf(onLoaded(recHostStale, "v1")),
			event: onTokenAt(epoch.Add(time.Minute)),
			want:  rule("token_host_not_expired", states.Stale, states.Stale),
			check: wantUnchanged,
		},
		{
			name:  "token/host_managed_fresh_turned_stale_is_not_refreshed",
			path:  pathOf(onLoaded(recHostFresh, "v1")),
			event: onTokenAt(staleWindow),
			want:  rule("token_turned_stale", states.Fresh, states.Stale),
			check: wantUnchanged,
		},
		{
			name:     "token/host_managed_stale_at_expiry_asks_host",
			path:     pathOf(onLoaded(recHostStale, "v1")),
			event:    onTokenAt(epoch.Add(2 * time.Minute)),
			want:     rule("token_host_expired", states.Stale, states.ExternalRefresh),
			commands: askHost,
			check:    wantUnchanged,
		},
		{
			name:     "token/host_managed_fresh_past_expiry_asks_host",
			path:     pathOf(onLoaded(recHostFresh, "v1")),
			event:    onTokenAt(epoch.Add(time.Hour)),
			want:     rule("token_host_expired", states.Fresh, states.ExternalRefresh),
			commands: askHost,
			check:    wantUnchanged,
		},
		{
			name:  "token/undated_managed_tokens_are_served_forever",
			path:  pathOf(onLoaded(recUndated, "v1")),
			event: onTokenAt(muchLater),
			want:  rule("token_fresh", states.Fresh, states.Fresh),
			check: wantUnchanged,
		},
	})
}

// Behaviour 5: a 401. Only a 401 for the current generation starts
// recovery; a 401 for a token that was already replaced changes nothing, and
// while a refresh is in flight further 401s and token requests just wait.
func TestBehaviourUnauthorized(t *testing.T) {
	fresh := pathOf(onLoaded(recFresh, "v1"))
	locking := pathOf(onLoaded(recFresh, "v1"), on401)
	redeeming := pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged)
	asking := pathOf(onLoaded(recHostFresh, "v1"), on401)
	refreshed := pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged,
		onRefreshed(grantRotated("2", epoch)), onPersisted("v2"))
	older := func(x states.Extended) states.Event {
		return states.Unauthorized{At: epoch, Generation: x.Generation - 1}
	}
	ignored := func(name string, path []pathStep, ev pathStep, id string, s states.State) behaviour {
		return behaviour{name: name, path: path, event: ev, want: rule(id, s, s), check: wantUnchanged}
	}

	runBehaviours(t, []behaviour{
		{
			name:     "unauthorized/managed_fresh_refreshes",
			path:     fresh,
			event:    on401,
			want:     rule("unauthorized_refresh", states.Fresh, states.Refreshing),
			commands: lockAndReread,
			check:    wantRecoveryNoted,
		},
		ignored("unauthorized/tokens_a_recovery_just_brought_are_not_refreshed_again", refreshed, on401,
			"unauthorized_again", states.Fresh),
		{
			name:     "unauthorized/after_the_cooldown_a_recovery_starts_again",
			path:     refreshed,
			event:    on401AfterCooldown,
			want:     rule("unauthorized_refresh", states.Fresh, states.Refreshing),
			commands: lockAndReread,
			check: func(t *testing.T, before, after states.Extended) {
				if want := epoch.Add(transitions.DefaultRecoveryCooldown); !after.RecoveryAt.Equal(want) ||
					after.RecoveryFrom != before.Generation {
					t.Errorf("recovery noted at %v from generation %d, want %v from %d",
						after.RecoveryAt, after.RecoveryFrom, want, before.Generation)
				}
			},
		},
		{
			name: "unauthorized/a_load_of_another_credential_ends_the_cooldown",
			path: append(slices.Clone(refreshed),
				onLoaded(managedTokens("o", allowedWS, epoch.Add(time.Hour)), "v3")),
			event:    on401,
			want:     rule("unauthorized_refresh", states.Fresh, states.Refreshing),
			commands: lockAndReread,
		},
		ignored("unauthorized/a_load_of_the_same_credential_keeps_the_cooldown",
			append(slices.Clone(refreshed), func(x states.Extended) states.Event {
				return states.Loaded{At: epoch, Record: x.Record, Version: x.Version}
			}), on401, "unauthorized_again", states.Fresh),
		{
			name:     "unauthorized/a_login_ends_the_cooldown",
			path:     append(slices.Clone(refreshed), onLogin(recFresh), onPersisted("v3")),
			event:    on401,
			want:     rule("unauthorized_refresh", states.Fresh, states.Refreshing),
			commands: lockAndReread,
		},
		{
			name:     "unauthorized/managed_stale_refreshes",
			path:     pathOf(onLoaded(recStale, "v1")),
			event:    on401,
			want:     rule("unauthorized_refresh", states.Stale, states.Refreshing),
			commands: lockAndReread,
		},
		{
			name:     "unauthorized/host_managed_asks_host",
			path:     pathOf(onLoaded(recHostFresh, "v1")),
			event:    on401,
			want:     rule("unauthorized_host", states.Fresh, states.ExternalRefresh),
			commands: askHost,
		},
		ignored("unauthorized/api_key_stays", pathOf(onLoaded(recAPIKey, "v1")), on401,
			"unauthorized_api_key", states.APIKey),
		ignored("unauthorized/older_generation_changes_nothing", refreshed, older,
			"unauthorized_old_generation", states.Fresh),
		ignored("unauthorized/older_generation_while_stale_changes_nothing",
			pathOf(onLoaded(recFresh, "v1"), onLogin(recStale)), older,
			"unauthorized_old_generation", states.Stale),
		ignored("unauthorized/older_generation_of_api_key_changes_nothing",
			pathOf(onLoaded(recFresh, "v1"), onLogin(recAPIKey)), older,
			"unauthorized_old_generation", states.APIKey),
		ignored("unauthorized/while_refreshing_waits", locking, on401,
			"unauthorized_wait", states.Refreshing),
		ignored("unauthorized/while_redeeming_waits", redeeming, on401,
			"unauthorized_wait", states.Refreshing),
		ignored("unauthorized/while_asking_host_waits", asking, on401,
			"unauthorized_wait", states.ExternalRefresh),
		ignored("token/while_refreshing_waits", locking, onTokenAt(muchLater),
			"token_wait", states.Refreshing),
		ignored("token/while_asking_host_waits", asking, onTokenAt(muchLater),
			"token_wait", states.ExternalRefresh),
		ignored("refresh_requested/while_refreshing_waits", redeeming, onRefreshRequested,
			"refresh_wait", states.Refreshing),
		ignored("unauthorized/logged_out_changes_nothing", nil, on401,
			"unauthorized_no_credential", states.LoggedOut),
	})
}

// Behaviour 6: entering refreshing takes the lock and re-reads the store.
// If another process rotated the tokens they are adopted, and redeemed only
// if they are stale themselves; if it signed out or switched accounts, the
// machine follows and never redeems its old refresh token.
func TestBehaviourReread(t *testing.T) {
	locking := pathOf(onLoaded(recFresh, "v1"), on401)
	rotatedFresh := managedTokens("2", allowedWS, epoch.Add(time.Hour))
	rotatedStale := managedTokens("2s", allowedWS, epoch.Add(time.Minute))
	otherStale := managedTokens("os", otherWS, epoch.Add(time.Minute))
	wake := staleAtFresh

	adopts := func(rec states.Record, v states.Version) checkFn {
		return func(t *testing.T, before, after states.Extended) {
			wantRecord(t, after.Record, rec)
			if after.Version != v {
				t.Errorf("Version = %q, want %q", after.Version, v)
			}
			wantNewGeneration(t, before, after)
		}
	}
	failed := func(x states.Extended, unreadable bool, err error) states.Event {
		return states.RereadFailed{At: epoch, Generation: x.Generation, Unreadable: unreadable, Err: err}
	}

	runBehaviours(t, []behaviour{
		{
			name:     "reread/store_unchanged_redeems_current_refresh_token",
			path:     locking,
			event:    onRereadUnchanged,
			want:     rule("reread_unchanged", states.Refreshing, states.Refreshing),
			commands: redeem("rt-1"),
			check:    wantUnchanged,
		},
		{
			name:     "reread/same_tokens_saved_again_redeems_current_refresh_token",
			path:     locking,
			event:    onReread(recFresh, "v1-resaved"),
			want:     rule("reread_unchanged", states.Refreshing, states.Refreshing),
			commands: redeem("rt-1"),
			check: func(t *testing.T, before, after states.Extended) {
				if after.Version != "v1-resaved" {
					t.Errorf("Version = %q, want the version just read", after.Version)
				}
				wantSameGeneration(t, before, after)
			},
		},
		{
			name:     "reread/adopt_newer_fresh_tokens_without_redeeming",
			path:     locking,
			event:    onReread(rotatedFresh, "v2"),
			want:     rule("reread_adopt_fresh", states.Refreshing, states.Fresh),
			commands: settle(&wake),
			check:    adopts(rotatedFresh, "v2"),
		},
		{
			name:     "reread/adopt_newer_stale_tokens_and_redeem_the_new_refresh_token",
			path:     locking,
			event:    onReread(rotatedStale, "v2"),
			want:     rule("reread_adopt_stale", states.Refreshing, states.Refreshing),
			commands: redeem("rt-2s"),
			check:    adopts(rotatedStale, "v2"),
		},
		{
			name:     "reread/store_empty_is_logged_out_without_redeeming",
			path:     locking,
			event:    onReread(states.Record{}, states.NoVersion),
			want:     rule("reread_empty", states.Refreshing, states.LoggedOut),
			commands: settle(nil),
			check:    adopts(states.Record{}, states.NoVersion),
		},
		{
			name:     "reread/other_account_fresh_is_adopted_old_token_never_redeemed",
			path:     locking,
			event:    onReread(recOtherAccount, "v-other"),
			want:     rule("reread_adopt_fresh", states.Refreshing, states.Fresh),
			commands: settle(&wake),
			check:    adopts(recOtherAccount, "v-other"),
		},
		{
			name:     "reread/other_account_stale_redeems_its_token_not_ours",
			path:     locking,
			event:    onReread(otherStale, "v-other"),
			want:     rule("reread_adopt_stale", states.Refreshing, states.Refreshing),
			commands: redeem("rt-os"),
			check:    adopts(otherStale, "v-other"),
		},
		{
			name:     "reread/api_key_stored_is_adopted",
			path:     locking,
			event:    onReread(recAPIKey, "v-key"),
			want:     rule("reread_adopt_api_key", states.Refreshing, states.APIKey),
			commands: settle(nil),
			check:    adopts(recAPIKey, "v-key"),
		},
		{
			name:   "reread/other_workspace_under_forced_workspace_is_restricted",
			policy: transitions.Policy{ForcedWorkspace: allowedWS},
			path:   locking,
			event:  onReread(recOtherAccount, "v-other"),
			want:   rule("reread_restricted", states.Refreshing, states.FailedPermanent),
			commands: func(_, after states.Extended) []effects.Command {
				return []effects.Command{
					effects.ReleaseLock{},
					effects.DeleteStores{Generation: after.Generation},
					effects.NotifyObservers{Generation: after.Generation},
				}
			},
			check: func(t *testing.T, before, after states.Extended) {
				wantFailure(states.ReasonRestricted)(t, before, after)
				wantRecord(t, after.Record, states.Record{})
			},
		},
		{
			name: "reread/unreadable_store_is_permanent",
			path: locking,
			event: func(x states.Extended) states.Event {
				return failed(x, true, errStoreUnreadable)
			},
			want:     rule("reread_unreadable", states.Refreshing, states.FailedPermanent),
			commands: settle(nil),
			check:    wantFailure(states.ReasonUnreadableStore),
		},
		{
			name:     "reread/lock_timeout_backs_off",
			path:     locking,
			event:    func(x states.Extended) states.Event { return failed(x, false, errLockBusy) },
			want:     rule("reread_failed", states.Refreshing, states.Stale),
			commands: settle(nil),
			check: func(t *testing.T, before, after states.Extended) {
				wantRecord(t, after.Record, before.Record)
				want := epoch.Add((transitions.Policy{}).Backoff(1, 0, 0.5))
				if !after.RetryAt.Equal(want) {
					t.Errorf("RetryAt = %v, want %v", after.RetryAt, want)
				}
			},
		},
	})
}

// Behaviour 7: a rotated refresh token is never dropped. The new tokens are
// persisted (compare-and-swap against the version read at the re-read)
// before the machine moves to fresh, which happens only once the save is
// done; waiters are woken then, not before.
func TestBehaviourRotatedRefreshTokenNeverDropped(t *testing.T) {
	grant := grantRotated("2", epoch)
	noRotation := grant
	noRotation.RefreshToken = states.Secret{}
	badID := grant
	badID.Claims = states.Claims{Email: "mallory@example.com"}
	badID.IDTokenErr = errors.New("oauth: id token: malformed JWT")

	// After the new tokens, the record is the old one with the grant's
	// tokens and claims, the new expiry, and the refresh time.
	applied := func(g states.Grant, keepRT, keepID bool) states.Record {
		r := recFresh
		r.Tokens.AccessToken = g.AccessToken
		if !keepRT {
			r.Tokens.RefreshToken = g.RefreshToken
		}
		if !keepID {
			r.Tokens.IDToken = g.IDToken
			r.Claims = g.Claims
		}
		r.AccessExpiry = g.AccessExpiry
		r.LastRefresh = epoch
		return r
	}

	tests := []struct {
		name  string
		grant states.Grant
		want  states.Record
		// note must appear in LastError; "" means LastError is empty.
		note string
	}{
		{"refresh/rotated_token_is_persisted",
			grant, applied(grant, false, false), ""},
		{"refresh/grant_without_refresh_token_keeps_the_old_one",
			noRotation, applied(noRotation, true, false), ""},
		{"refresh/unparsable_id_token_still_persists_new_tokens",
			badID, applied(badID, false, true), "id token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := reachByPath(t, transitions.Policy{}, onLoaded(recFresh, "v1"), on401)
			g0 := m.Extended().Generation

			// The store was saved again by someone with the same tokens:
			// the save must be checked against this version, not v1.
			res := stepOK(t, m, onReread(recFresh, "v1-reread")(m.Extended()))
			wantRedeem := []effects.Command{effects.RedeemRefreshToken{
				Generation: g0, RefreshToken: states.NewSecret("rt-1")}}
			if diff := cmp.Diff(wantRedeem, res.Commands); diff != "" {
				t.Fatalf("re-read commands (-want +got):\n%s", diff)
			}

			res = stepOK(t, m, onRefreshed(tt.grant)(m.Extended()))
			if res.Rule != "refresh_succeeded" || m.State() != states.Refreshing {
				t.Fatalf("refresh succeeded: rule %s, state %v; want refresh_succeeded, "+
					"staying in refreshing", res.Rule, m.State())
			}
			wantPersist := []effects.Command{effects.PersistRecord{
				Generation: g0 + 1, Record: tt.want, Expected: "v1-reread"}}
			if diff := cmp.Diff(wantPersist, res.Commands); diff != "" {
				t.Errorf("the new tokens must be persisted first, and nothing else "+
					"(-want +got):\n%s", diff)
			}
			wantRecord(t, m.Extended().Record, tt.want)
			note := m.Extended().LastError
			if (tt.note == "") != (note == "") || !strings.Contains(note, tt.note) {
				t.Errorf("LastError = %q, want a note about %q", note, tt.note)
			}

			// Until the save is done, callers keep waiting.
			res = stepOK(t, m, states.TokenRequested{At: epoch})
			if res.Rule != "token_wait" || len(res.Commands) != 0 {
				t.Errorf("a token request before the save: rule %s, commands %v; "+
					"want token_wait and none", res.Rule, res.Commands)
			}

			res = stepOK(t, m, states.Persisted{At: epoch, Generation: g0 + 1, Version: "v2"})
			got := outcome{res.Rule, res.Event, res.From, res.To}
			want := rule("persisted_refresh", states.Refreshing, states.Fresh)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("persisted (-want +got):\n%s", diff)
			}
			wantSettle := []effects.Command{
				effects.ReleaseLock{},
				effects.NotifyObservers{Generation: g0 + 1},
				effects.WakeAt{Generation: g0 + 1, At: staleAtFresh},
			}
			if diff := cmp.Diff(wantSettle, res.Commands); diff != "" {
				t.Errorf("entering fresh (-want +got):\n%s", diff)
			}
			if x := m.Extended(); x.Version != "v2" || x.Unsaved {
				t.Errorf("Version = %q, Unsaved = %v; want v2 and saved", x.Version, x.Unsaved)
			}
			wantRecord(t, m.Extended().Record, tt.want)
		})
	}

	wake := staleAtFresh
	runBehaviours(t, []behaviour{
		{
			name:     "refresh/failed_save_still_serves_the_new_tokens_from_memory",
			path:     pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged, onRefreshed(grant)),
			event:    onPersistFailed,
			want:     rule("persist_failed_refresh", states.Refreshing, states.Fresh),
			commands: settle(&wake),
			check: func(t *testing.T, before, after states.Extended) {
				wantRecord(t, after.Record, applied(grant, false, false))
				if !after.Unsaved || !strings.Contains(after.LastError, "could not be saved") {
					t.Errorf("Unsaved = %v, LastError = %q; want the failed save noted",
						after.Unsaved, after.LastError)
				}
			},
		},
	})
}

// TestBehaviourUnsavedRotationSurvivesReload: when the save after a rotation
// failed, the only live refresh token is the one in memory; the store still
// holds the one the provider has just retired. A reload that finds that old
// record must not replace the live token with the dead one, or the next
// refresh redeems a retired token and the provider reports reuse.
func TestBehaviourUnsavedRotationSurvivesReload(t *testing.T) {
	m := reachByPath(t, transitions.Policy{}, onLoaded(recFresh, "v1"), on401, onRereadUnchanged,
		onRefreshed(grantRotated("2", epoch)), onPersistFailed)
	stepOK(t, m, states.Loaded{At: epoch, Record: recFresh, Version: "v1"})
	if got := m.Extended().Record.Tokens.RefreshToken; !got.Equal(states.NewSecret("rt-2")) {
		t.Errorf("after a reload the refresh token held is not the rotated one")
	}
}

// Behaviour 8: a transient failure backs off. The machine goes to stale with
// the old access token kept and RetryAt set from the backoff; until then,
// token requests and 401s start nothing.
func TestBehaviourTransientFailure(t *testing.T) {
	def := transitions.Policy{}
	redeeming := pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged)
	backingOff := append(slices.Clone(redeeming), onRefreshFailed)
	retried := append(slices.Clone(backingOff), onTokenAt(epoch.Add(time.Hour)), onRereadUnchanged)
	firstRetry := epoch.Add(def.Backoff(1, 0, 0.5))
	hostBackingOff := pathOf(onLoaded(recHostExpired, "v1"), onRefreshRequested, onHostFailed)
	tooManyRequests := func(x states.Extended) states.Event {
		return states.RefreshFailed{At: epoch, Generation: x.Generation, Jitter: 0.5,
			Err: &states.RefreshError{Status: 429, RetryAfter: 10 * time.Minute}}
	}
	retryAt := func(want time.Time, attempts int) checkFn {
		return func(t *testing.T, before, after states.Extended) {
			t.Helper()
			if !after.RetryAt.Equal(want) || after.Attempts != attempts {
				t.Errorf("RetryAt = %v, Attempts = %d; want %v, %d",
					after.RetryAt, after.Attempts, want, attempts)
			}
		}
	}

	runBehaviours(t, []behaviour{
		{
			name:     "transient/refresh_failed_backs_off_keeping_the_old_token",
			path:     redeeming,
			event:    onRefreshFailed,
			want:     rule("refresh_failed", states.Refreshing, states.Stale),
			commands: settle(nil),
			check: func(t *testing.T, before, after states.Extended) {
				wantRecord(t, after.Record, before.Record)
				retryAt(firstRetry, 1)(t, before, after)
				if !strings.Contains(after.LastError, "HTTP 503") {
					t.Errorf("LastError = %q, want the failure described", after.LastError)
				}
				wantSameGeneration(t, before, after)
			},
		},
		{
			name:     "transient/retry_after_hint_sets_the_wait",
			path:     redeeming,
			event:    tooManyRequests,
			want:     rule("refresh_failed", states.Refreshing, states.Stale),
			commands: settle(nil),
			check:    retryAt(epoch.Add(10*time.Minute), 1),
		},
		{
			name:  "transient/token_request_while_backing_off_starts_nothing",
			path:  backingOff,
			event: onTokenAt(firstRetry.Add(-time.Millisecond)),
			want:  rule("token_backing_off", states.Stale, states.Stale),
			check: wantUnchanged,
		},
		{
			name:  "transient/401_while_backing_off_starts_nothing",
			path:  backingOff,
			event: on401,
			want:  rule("unauthorized_backing_off", states.Stale, states.Stale),
			check: wantUnchanged,
		},
		{
			name:     "transient/token_request_after_backoff_refreshes",
			path:     backingOff,
			event:    onTokenAt(firstRetry),
			want:     rule("token_stale_refresh", states.Stale, states.Refreshing),
			commands: lockAndReread,
		},
		{
			name:     "transient/second_failure_waits_longer",
			path:     retried,
			event:    onRefreshFailed,
			want:     rule("refresh_failed", states.Refreshing, states.Stale),
			commands: settle(nil),
			check:    retryAt(epoch.Add(def.Backoff(2, 0, 0.5)), 2),
		},
		{
			name:  "transient/success_clears_the_backoff",
			path:  retried,
			event: onRefreshed(grantRotated("2", epoch)),
			want:  rule("refresh_succeeded", states.Refreshing, states.Refreshing),
			commands: func(before, after states.Extended) []effects.Command {
				return persist(after.Record, "v1")(before, after)
			},
			check: func(t *testing.T, before, after states.Extended) {
				retryAt(time.Time{}, 0)(t, before, after)
				if after.LastError != "" {
					t.Errorf("LastError = %q after a success, want none", after.LastError)
				}
			},
		},
		{
			name:     "transient/host_failed_backs_off",
			path:     pathOf(onLoaded(recHostExpired, "v1"), onRefreshRequested),
			event:    onHostFailed,
			want:     rule("host_refresh_failed", states.ExternalRefresh, states.Stale),
			commands: notify,
			check: func(t *testing.T, before, after states.Extended) {
				wantRecord(t, after.Record, before.Record)
				retryAt(epoch.Add(def.Backoff(1, 0, 0.5)), 1)(t, before, after)
			},
		},
		{
			name:  "transient/expired_host_tokens_while_backing_off_do_not_ask_the_host",
			path:  hostBackingOff,
			event: onTokenAt(epoch.Add(time.Second)),
			want:  rule("token_backing_off", states.Stale, states.Stale),
			check: wantUnchanged,
		},
		{
			name:     "transient/expired_host_tokens_after_backoff_ask_the_host",
			path:     hostBackingOff,
			event:    onTokenAt(epoch.Add(time.Minute)),
			want:     rule("token_host_expired", states.Stale, states.ExternalRefresh),
			commands: askHost,
		},
	})
}

// Behaviour 9: a permanent failure is sticky. Once failed_permanent, nothing
// touches the network (no redemption, no lock and re-read, no question to
// the host) until a login, a logout, or a load that finds a different
// credential.
func TestBehaviourPermanentFailure(t *testing.T) {
	redeeming := pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged)
	refused := func(r states.Reason) *states.RefreshError {
		return &states.RefreshError{Permanent: true, Reason: r, Status: 401}
	}
	tests := []struct {
		name string
		err  *states.RefreshError
		want states.Reason
	}{
		{"permanent/reused_refresh_token", refused(states.ReasonReused), states.ReasonReused},
		{"permanent/expired_refresh_token", refused(states.ReasonExpired), states.ReasonExpired},
		{"permanent/unclassified_refusal", nil, states.ReasonUnknown},
	}
	var cases []behaviour
	for _, tt := range tests {
		cases = append(cases, behaviour{
			name: tt.name,
			path: redeeming,
			event: func(x states.Extended) states.Event {
				return states.RefreshRejected{At: epoch, Generation: x.Generation, Err: tt.err}
			},
			want:     rule("refresh_rejected", states.Refreshing, states.FailedPermanent),
			commands: settle(nil),
			check: func(t *testing.T, before, after states.Extended) {
				wantFailure(tt.want)(t, before, after)
				// The dead credential is kept, so a reload that finds it
				// again is recognised and stays failed.
				wantRecord(t, after.Record, before.Record)
			},
		})
	}
	runBehaviours(t, cases)

	network := []effects.Kind{
		effects.KindRedeemRefreshToken, effects.KindLockAndReread, effects.KindAskHost}
	for _, pol := range testPolicies {
		for _, sc := range machineScenarios {
			if sc.state != states.FailedPermanent || !sc.meantFor(pol.name) {
				continue
			}
			probe := sc.machine(t, pol.policy)
			for _, v := range eventCatalogue(probe.Extended()) {
				if leavesFailure(v.ev, probe.Extended()) {
					continue
				}
				name := "sticky/" + pol.name + "/" + sc.name + "/" + v.ev.Kind().String() + "/" + v.name
				t.Run(name, func(t *testing.T) {
					m := sc.machine(t, pol.policy)
					before := m.Extended()
					res, err := m.Step(v.ev)
					if err != nil {
						checkNotPermitted(t, m, states.FailedPermanent, before, v.ev.Kind(), res, err)
						return
					}
					if m.State() != states.FailedPermanent {
						t.Errorf("rule %s left failed_permanent for %v", res.Rule, m.State())
					}
					for _, c := range res.Commands {
						if slices.Contains(network, c.Kind()) {
							t.Errorf("rule %s emitted %v in failed_permanent", res.Rule, c.Kind())
						}
					}
					if m.Extended().Failure == states.ReasonNone {
						t.Errorf("rule %s forgot why the credential failed", res.Rule)
					}
				})
			}
		}
	}

	rejected := append(slices.Clone(redeeming), onRejected(states.ReasonReused))
	sameAgain := func(x states.Extended) states.Event {
		return states.Loaded{At: epoch, Record: x.Record, Version: "v1"}
	}
	runBehaviours(t, []behaviour{
		{
			name:  "permanent/reload_with_the_same_credential_stays_failed",
			path:  rejected,
			event: sameAgain,
			want:  rule("load_same_while_failed", states.FailedPermanent, states.FailedPermanent),
			check: wantUnchanged,
		},
		{
			name:     "permanent/reload_with_a_different_credential_leaves",
			path:     rejected,
			event:    onLoaded(managedTokens("2", allowedWS, epoch.Add(time.Hour)), "v2"),
			want:     rule("load_fresh", states.FailedPermanent, states.Fresh),
			commands: wakeAt(staleAtFresh),
			check: func(t *testing.T, before, after states.Extended) {
				wantFailure(states.ReasonNone)(t, before, after)
				wantNewGeneration(t, before, after)
			},
		},
		{
			name:     "permanent/login_leaves",
			path:     rejected,
			event:    onLogin(recAPIKey),
			want:     rule("login_api_key", states.FailedPermanent, states.APIKey),
			commands: persist(recAPIKey, states.AnyVersion),
			check:    wantFailure(states.ReasonNone),
		},
		{
			name:     "permanent/logout_leaves",
			path:     rejected,
			event:    onLogout,
			want:     rule("logout", states.FailedPermanent, states.LoggedOut),
			commands: deleteStores,
			check:    wantFailure(states.ReasonNone),
		},
	})
}

// leavesFailure reports whether ev is one of the ways out of
// failed_permanent: a login, a logout, or a load that finds a credential
// other than the one that failed (or finds the store emptied).
func leavesFailure(ev states.Event, ext states.Extended) bool {
	switch e := ev.(type) {
	case states.LoginRequested, states.LogoutRequested:
		return true
	case states.Loaded:
		return e.Err == nil && (e.Record.IsZero() || !e.Record.SameCredential(ext.Record))
	}
	return false
}

// Behaviour 10: the host's new tokens are checked against the forced
// workspace, persisted, and only then is the machine fresh. Tokens for the
// wrong workspace are not stored.
func TestBehaviourHostRefresh(t *testing.T) {
	forced := transitions.Policy{ForcedWorkspace: allowedWS}
	asking := pathOf(onLoaded(recHostFresh, "v1"), onRefreshRequested)
	grant := grantRotated("h2", epoch)
	grant.RefreshToken = states.Secret{}
	foreign := grant
	foreign.Claims.AccountID = otherWS
	wake := staleAtFresh

	// The host's tokens replace the old ones and name the account.
	hostApplied := func(g states.Grant) states.Record {
		r := recHostFresh
		r.Tokens.IDToken = g.IDToken
		r.Tokens.AccessToken = g.AccessToken
		r.Tokens.AccountID = g.Claims.AccountID
		r.Claims = g.Claims
		r.AccessExpiry = g.AccessExpiry
		r.LastRefresh = epoch
		return r
	}

	runBehaviours(t, []behaviour{
		{
			name:     "host/asked_with_the_previous_account",
			path:     pathOf(onLoaded(recHostFresh, "v1")),
			event:    onRefreshRequested,
			want:     rule("refresh_host", states.Fresh, states.ExternalRefresh),
			commands: askHost,
		},
		{
			name:     "host/tokens_for_the_forced_workspace_are_persisted",
			policy:   forced,
			path:     asking,
			event:    onHostRefreshed(grant),
			want:     rule("host_refresh_succeeded", states.ExternalRefresh, states.ExternalRefresh),
			commands: persist(hostApplied(grant), "v1"),
			check:    wantNewGeneration,
		},
		{
			name:     "host/persisted_is_fresh",
			policy:   forced,
			path:     append(slices.Clone(asking), onHostRefreshed(grant)),
			event:    onPersisted("v2"),
			want:     rule("persisted_refresh", states.ExternalRefresh, states.Fresh),
			commands: settle(&wake),
			check: func(t *testing.T, before, after states.Extended) {
				wantRecord(t, after.Record, hostApplied(grant))
			},
		},
		{
			name:     "host/workspace_mismatch_stores_nothing",
			policy:   forced,
			path:     asking,
			event:    onHostRefreshed(foreign),
			want:     rule("host_workspace_mismatch", states.ExternalRefresh, states.Stale),
			commands: notify,
			check: func(t *testing.T, before, after states.Extended) {
				wantRecord(t, after.Record, before.Record)
				wantSameGeneration(t, before, after)
				if after.RetryAt.IsZero() || !strings.Contains(after.LastError, otherWS) {
					t.Errorf("RetryAt = %v, LastError = %q; want a backoff naming the workspace",
						after.RetryAt, after.LastError)
				}
			},
		},
		{
			name:     "host/other_workspace_without_restriction_is_accepted",
			path:     asking,
			event:    onHostRefreshed(foreign),
			want:     rule("host_refresh_succeeded", states.ExternalRefresh, states.ExternalRefresh),
			commands: persist(hostApplied(foreign), "v1"),
		},
	})
}

// Behaviour 11: login restrictions. A stored credential that violates one is
// a permanent failure and is deleted, unless it came from the environment
// (there is nothing to delete); a login that violates one persists nothing.
func TestBehaviourLoginRestrictions(t *testing.T) {
	forcedAPI := transitions.Policy{ForcedMethod: transitions.MethodAPI}
	forcedChatGPT := transitions.Policy{ForcedMethod: transitions.MethodChatGPT}
	forcedWS := transitions.Policy{ForcedWorkspace: allowedWS}

	restricted := func(p transitions.Policy, rec states.Record) checkFn {
		return func(t *testing.T, before, after states.Extended) {
			wantFailure(states.ReasonRestricted)(t, before, after)
			if want := p.Violation(rec); want == "" || after.LastError != want {
				t.Errorf("LastError = %q, want the violation %q", after.LastError, want)
			}
			wantRecord(t, after.Record, states.Record{})
			wantNewGeneration(t, before, after)
		}
	}
	fromEnv := func(rec states.Record) pathStep {
		return just(states.Loaded{At: epoch, Record: rec, FromEnv: true})
	}
	freshPath := pathOf(onLoaded(recFresh, "v1"))

	runBehaviours(t, []behaviour{
		{
			name:     "restriction/load_tokens_when_api_keys_forced",
			policy:   forcedAPI,
			event:    onLoaded(recFresh, "v1"),
			want:     rule("load_restricted", states.LoggedOut, states.FailedPermanent),
			commands: deleteStores,
			check:    restricted(forcedAPI, recFresh),
		},
		{
			name:     "restriction/load_api_key_when_chatgpt_forced",
			policy:   forcedChatGPT,
			event:    onLoaded(recAPIKey, "v1"),
			want:     rule("load_restricted", states.LoggedOut, states.FailedPermanent),
			commands: deleteStores,
			check:    restricted(forcedChatGPT, recAPIKey),
		},
		{
			name:     "restriction/load_other_workspace",
			policy:   forcedWS,
			event:    onLoaded(recOtherAccount, "v1"),
			want:     rule("load_restricted", states.LoggedOut, states.FailedPermanent),
			commands: deleteStores,
			check:    restricted(forcedWS, recOtherAccount),
		},
		{
			name:     "restriction/load_other_workspace_while_fresh",
			policy:   forcedWS,
			path:     freshPath,
			event:    onLoaded(recOtherAccount, "v2"),
			want:     rule("load_restricted", states.Fresh, states.FailedPermanent),
			commands: deleteStores,
			check:    restricted(forcedWS, recOtherAccount),
		},
		{
			name:   "restriction/api_key_from_environment_is_not_deleted",
			policy: forcedChatGPT,
			event:  fromEnv(recAPIKey),
			want:   rule("load_restricted_env", states.LoggedOut, states.FailedPermanent),
			check:  restricted(forcedChatGPT, recAPIKey),
		},
		{
			name:   "restriction/allowed_api_key_from_environment",
			policy: forcedAPI,
			event:  fromEnv(recAPIKey),
			want:   rule("load_api_key", states.LoggedOut, states.APIKey),
			check: func(t *testing.T, before, after states.Extended) {
				if !after.FromEnv {
					t.Error("FromEnv = false for a credential from the environment")
				}
			},
		},
		{
			name:   "restriction/login_tokens_when_api_keys_forced_persists_nothing",
			policy: forcedAPI,
			path:   pathOf(onLoaded(recAPIKey, "v1")),
			event:  onLogin(recFresh),
			want:   rule("login_restricted", states.APIKey, states.FailedPermanent),
			check:  restricted(forcedAPI, recFresh),
		},
		{
			name:   "restriction/login_api_key_when_chatgpt_forced_persists_nothing",
			policy: forcedChatGPT,
			event:  onLogin(recAPIKey),
			want:   rule("login_restricted", states.LoggedOut, states.FailedPermanent),
			check:  restricted(forcedChatGPT, recAPIKey),
		},
		{
			name:   "restriction/login_other_workspace_persists_nothing",
			policy: forcedWS,
			path:   freshPath,
			event:  onLogin(recOtherAccount),
			want:   rule("login_restricted", states.Fresh, states.FailedPermanent),
			check:  restricted(forcedWS, recOtherAccount),
		},
		{
			name:     "restriction/login_allowed_workspace",
			policy:   forcedWS,
			event:    onLogin(recFresh),
			want:     rule("login_fresh", states.LoggedOut, states.Fresh),
			commands: then(persist(recFresh, states.AnyVersion), wakeAt(staleAtFresh)),
		},
		{
			name:     "restriction/failure_left_by_login_of_allowed_credential",
			policy:   forcedWS,
			path:     pathOf(onLoaded(recOtherAccount, "v1")),
			event:    onLogin(recFresh),
			want:     rule("login_fresh", states.FailedPermanent, states.Fresh),
			commands: then(persist(recFresh, states.AnyVersion), wakeAt(staleAtFresh)),
			check:    wantFailure(states.ReasonNone),
		},
	})
}
