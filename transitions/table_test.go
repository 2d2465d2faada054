package transitions_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

func TestDefaultTableIsValid(t *testing.T) {
	d := transitions.Default()
	if _, err := transitions.New(d.Initial(), d.Rules()); err != nil {
		t.Fatalf("the default rules do not validate: %v", err)
	}
	if got := d.Initial(); got != states.LoggedOut {
		t.Errorf("Initial() = %v, want logged_out", got)
	}
	if diff := cmp.Diff(ruleIDs(transitions.Rules()), ruleIDs(d.Rules())); diff != "" {
		t.Errorf("Rules() and Default().Rules() differ (-package +table):\n%s", diff)
	}
	for _, r := range d.Rules() {
		got, ok := d.Rule(r.ID)
		if !ok || got.ID != r.ID {
			t.Errorf("Rule(%q) = %q, %v", r.ID, got.ID, ok)
		}
	}
	if _, ok := d.Rule("no_such_rule"); ok {
		t.Error(`Rule("no_such_rule") found a rule`)
	}
}

// TestRulesAreCopies makes sure a caller building a variant cannot change
// the table every machine runs: not its rules' IDs, and not the From and
// Commands slices inside them, which several rules share.
func TestRulesAreCopies(t *testing.T) {
	d := transitions.Default()
	want := d.Markdown()
	plant := func(rs []transitions.Rule) {
		for i := range rs {
			rs[i].ID = "planted"
			rs[i].From[0] = states.APIKey
			if len(rs[i].Commands) > 0 {
				rs[i].Commands[0] = effects.KindAskHost
			}
		}
	}
	plant(transitions.Rules())
	plant(d.Rules())
	if r, ok := d.Rule("logout"); ok {
		plant([]transitions.Rule{r})
	}
	for _, e := range d.Edges() {
		plant([]transitions.Rule{e.Rule})
	}
	if diff := cmp.Diff(want, d.Markdown()); diff != "" {
		t.Errorf("editing copies of the rules changed the default table (-before +after):\n%s", diff)
	}
}

// TestNewCopiesItsInput: editing the rules after New does not change the
// table built from them.
func TestNewCopiesItsInput(t *testing.T) {
	rs := chain()
	tab, err := transitions.New(states.LoggedOut, rs)
	if err != nil {
		t.Fatal(err)
	}
	want := tab.Markdown()
	rs[0].ID = "planted"
	rs[0].From[0] = states.Stale
	rs[3].Commands[0] = effects.KindAskHost
	if diff := cmp.Diff(want, tab.Markdown()); diff != "" {
		t.Errorf("editing the rules after New changed the table (-before +after):\n%s", diff)
	}
}

func TestPermits(t *testing.T) {
	d := transitions.Default()
	for _, s := range states.All() {
		for _, k := range states.EventKinds() {
			want := slices.ContainsFunc(d.Rules(), func(r transitions.Rule) bool {
				return r.On == k && slices.Contains(r.From, s)
			})
			if got := d.Permits(s, k); got != want {
				t.Errorf("Permits(%v, %v) = %v, want %v", s, k, got, want)
			}
		}
	}
	if d.Permits(states.State(42), states.KindTokenRequested) {
		t.Error("Permits is true for a state that does not exist")
	}
}

// A small valid table, which each validation case breaks in one way. It
// walks through all seven states, so that only the planted problem is
// reported.
func chain() []transitions.Rule {
	return []transitions.Rule{
		{ID: "sign_in", From: only(states.LoggedOut), On: states.KindLoginRequested, To: states.APIKey},
		{ID: "to_fresh", From: only(states.APIKey), On: states.KindLoaded, To: states.Fresh},
		{ID: "to_stale", From: only(states.Fresh), On: states.KindWoke, To: states.Stale},
		{ID: "refresh", From: only(states.Stale), On: states.KindTokenRequested, To: states.Refreshing,
			Commands: []effects.Kind{effects.KindLockAndReread}},
		{ID: "redeem", From: only(states.Refreshing), On: states.KindStoreReread, To: transitions.Stay,
			Commands: []effects.Kind{effects.KindRedeemRefreshToken}},
		{ID: "give_up", From: only(states.Refreshing), On: states.KindRefreshFailed,
			To: states.ExternalRefresh, Commands: []effects.Kind{
				effects.KindReleaseLock, effects.KindNotifyObservers, effects.KindAskHost}},
		{ID: "host_failed", From: only(states.ExternalRefresh), On: states.KindHostRefreshFailed,
			To: states.FailedPermanent, Commands: []effects.Kind{effects.KindNotifyObservers}},
	}
}

func only(s ...states.State) []states.State { return s }

var passes = transitions.Guard{Name: "always", Test: func(transitions.Input) bool { return true }}

// ruleSet is a table under construction.
type ruleSet = []transitions.Rule

func TestNewRejects(t *testing.T) {
	if _, err := transitions.New(states.LoggedOut, chain()); err != nil {
		t.Fatalf("the base table is invalid: %v", err)
	}

	tests := []struct {
		name    string
		initial states.State
		edit    func(ruleSet) ruleSet
		want    string
	}{
		{"duplicate_id", states.LoggedOut, func(rs ruleSet) ruleSet {
			rs[1].ID = rs[0].ID
			return rs
		}, "rule sign_in: duplicate ID"},
		{"bad_id/upper_case", states.LoggedOut, func(rs ruleSet) ruleSet {
			rs[0].ID = "SignIn"
			return rs
		}, "rule SignIn: ID must be a snake_case name"},
		{"bad_id/space", states.LoggedOut, func(rs ruleSet) ruleSet {
			rs[0].ID = "sign in"
			return rs
		}, "rule sign in: ID must be a snake_case name"},
		{"bad_id/empty", states.LoggedOut, func(rs ruleSet) ruleSet {
			rs[0].ID = ""
			return rs
		}, "rule #0: ID must be a snake_case name"},
		{"unknown_state/from", states.LoggedOut, func(rs ruleSet) ruleSet {
			return append(rs, transitions.Rule{ID: "ghost", From: only(states.State(9)),
				On: states.KindWoke, To: states.LoggedOut})
		}, "rule ghost: unknown From state state(9)"},
		{"unknown_state/to", states.LoggedOut, func(rs ruleSet) ruleSet {
			rs[0].To = states.State(9)
			return rs
		}, "rule sign_in: unknown To state state(9)"},
		{"unknown_state/initial", states.State(9), func(rs ruleSet) ruleSet {
			return rs
		}, "initial state state(9) is not a state"},
		{"no_from_state", states.LoggedOut, func(rs ruleSet) ruleSet {
			return append(rs, transitions.Rule{ID: "nowhere", On: states.KindWoke, To: states.LoggedOut})
		}, "rule nowhere: no From state"},
		{"unknown_event_kind", states.LoggedOut, func(rs ruleSet) ruleSet {
			rs[0].On = states.EventKind(200)
			return rs
		}, "rule sign_in: unknown event kind 200"},
		{"unreachable_state", states.LoggedOut, func(rs ruleSet) ruleSet {
			return slices.DeleteFunc(rs, func(r transitions.Rule) bool { return r.ID == "host_failed" })
		}, "state failed_permanent is not reachable from logged_out"},
		{"guarded_rule_without_fallback", states.LoggedOut, func(rs ruleSet) ruleSet {
			rs[0].Guard = passes
			return rs
		}, "rule sign_in: the last rule for logged_out on login_requested is guarded (always); " +
			"add an unguarded fallback"},
		{"unguarded_rule_not_last", states.LoggedOut, func(rs ruleSet) ruleSet {
			return slices.Insert(rs, 1, transitions.Rule{ID: "shadowed", From: only(states.LoggedOut),
				On: states.KindLoginRequested, To: states.Fresh})
		}, "rule sign_in: unguarded in logged_out on login_requested but followed by rule shadowed, " +
			"which can never fire"},
		{"guard_without_name", states.LoggedOut, func(rs ruleSet) ruleSet {
			return slices.Insert(rs, 0, transitions.Rule{ID: "anonymous", From: only(states.LoggedOut),
				On: states.KindLoginRequested, Guard: transitions.Guard{Test: passes.Test},
				To: states.Fresh})
		}, "rule anonymous: guard has no name"},
		{"redeem_outside_refreshing", states.LoggedOut, func(rs ruleSet) ruleSet {
			rs[3].Commands = []effects.Kind{effects.KindRedeemRefreshToken}
			return rs
		}, "rule refresh: redeems a refresh token outside refreshing"},
		{"redeem_from_refreshing_and_more", states.LoggedOut, func(rs ruleSet) ruleSet {
			rs[4].From = only(states.Refreshing, states.Stale)
			return rs
		}, "rule redeem: redeems a refresh token outside refreshing"},
		{"leaving_waiting_without_notify/refreshing", states.LoggedOut, func(rs ruleSet) ruleSet {
			rs[5].Commands = []effects.Kind{effects.KindReleaseLock, effects.KindAskHost}
			return rs
		}, "rule give_up: leaves refreshing without NotifyObservers, so waiters would never wake"},
		{"leaving_waiting_without_notify/external_refresh", states.LoggedOut, func(rs ruleSet) ruleSet {
			rs[6].Commands = nil
			return rs
		}, "rule host_failed: leaves external_refresh without NotifyObservers"},
		{"leaving_refreshing_without_release_lock", states.LoggedOut, func(rs ruleSet) ruleSet {
			rs[5].Commands = []effects.Kind{effects.KindNotifyObservers, effects.KindAskHost}
			return rs
		}, "rule give_up: leaves refreshing without ReleaseLock"},
		{"two_outcome_commands", states.LoggedOut, func(rs ruleSet) ruleSet {
			rs[3].Commands = []effects.Kind{effects.KindLockAndReread, effects.KindPersistRecord}
			return rs
		}, "rule refresh: runs 2 commands with outcomes; at most one may run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := transitions.New(tt.initial, tt.edit(chain()))
			if err == nil {
				t.Fatalf("New accepted the table; want an error containing %q", tt.want)
			}
			if tab != nil {
				t.Errorf("New returned a table along with the error")
			}
			if !strings.HasPrefix(err.Error(), "transitions: invalid table: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// TestNewReportsEveryProblem: a table with several problems gets them all
// in one error, not just the first.
func TestNewReportsEveryProblem(t *testing.T) {
	rs := chain()
	rs[1].ID = rs[0].ID
	rs[3].Commands = []effects.Kind{effects.KindRedeemRefreshToken}
	_, err := transitions.New(states.LoggedOut, rs)
	if err == nil {
		t.Fatal("New accepted a table with two problems")
	}
	for _, want := range []string{"duplicate ID", "redeems a refresh token outside refreshing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestDefaultTableInvariants checks properties of the built-in rules that
// validation does not enforce in general but this table promises.
func TestDefaultTableInvariants(t *testing.T) {
	d := transitions.Default()
	for _, r := range d.Rules() {
		for _, k := range r.Commands {
			if k == effects.KindRedeemRefreshToken && r.Target(states.Refreshing) != states.Refreshing {
				t.Errorf("rule %s redeems a refresh token but leaves refreshing", r.ID)
			}
		}
		if r.On == states.KindRefreshSucceeded && r.To != transitions.Stay {
			t.Errorf("rule %s moves on a refresh before its tokens are saved", r.ID)
		}
	}
	// A terminal state is left only by what a person or another process
	// does: a login, a logout, or a load that finds something else.
	outside := []states.EventKind{
		states.KindLoginRequested, states.KindLogoutRequested, states.KindLoaded}
	for _, e := range d.Edges() {
		if e.From.Terminal() && e.To != e.From && !slices.Contains(outside, e.Rule.On) {
			t.Errorf("rule %s leaves terminal state %v on %v", e.Rule.ID, e.From, e.Rule.On)
		}
	}
	// A waiting state is entered only by a rule that starts the one command
	// whose outcome ends the wait; otherwise callers would wait forever.
	for _, e := range d.Edges() {
		if !e.To.Waiting() || e.To == e.From {
			continue
		}
		if !slices.ContainsFunc(e.Rule.Commands, effects.Kind.HasOutcome) {
			t.Errorf("rule %s enters %v without a command that has an outcome", e.Rule.ID, e.To)
		}
	}
	// Every outcome a rule's commands can produce is permitted where the
	// rule leads, so that no outcome the runner feeds back is refused.
	outcomes := map[effects.Kind][]states.EventKind{
		effects.KindPersistRecord: {states.KindPersisted, states.KindPersistFailed},
		effects.KindDeleteStores:  {states.KindStoresCleared},
		effects.KindLockAndReread: {states.KindStoreReread, states.KindRereadFailed},
		effects.KindWakeAt:        {states.KindWoke},
		effects.KindAskHost:       {states.KindHostRefreshSucceeded, states.KindHostRefreshFailed},
		effects.KindRedeemRefreshToken: {
			states.KindRefreshSucceeded, states.KindRefreshFailed, states.KindRefreshRejected},
	}
	for _, e := range d.Edges() {
		for _, k := range e.Rule.Commands {
			for _, ev := range outcomes[k] {
				if !d.Permits(e.To, ev) {
					t.Errorf("rule %s runs %v but %v does not permit its outcome %v",
						e.Rule.ID, k, e.To, ev)
				}
			}
		}
	}
	// Every state and event kind that has rules in a waiting state either
	// waits or ends the wait; login, logout and reload wait for the outcome.
	for _, s := range []states.State{states.Refreshing, states.ExternalRefresh} {
		held := []states.EventKind{states.KindLoginRequested, states.KindLogoutRequested, states.KindLoaded}
		for _, k := range held {
			if d.Permits(s, k) {
				t.Errorf("%v permits %v; it must wait until the outcome settles", s, k)
			}
		}
	}
}

func ruleIDs(rs []transitions.Rule) []string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	return ids
}
