package engine_test

import (
	"testing"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// A refresh token this process has redeemed is spent: the provider retired
// it when it handed out the successor. When the successor could not be
// saved, the store still holds the spent token, and nothing may bring it
// back into use: not a re-read before the next redemption, not a reload,
// not a reload after the successor failed for good.
func TestSpentRefreshTokenIsNeverAdoptedAgain(t *testing.T) {
	// Loaded with rt-1, redeemed it for rt-2, and the save of rt-2 failed.
	unsaved := pathOf(onLoaded(recFresh, "v1"), on401, onRereadUnchanged,
		onRefreshed(grantRotated("2", epoch)), onPersistFailed)
	// Another program re-saved the spent credential: another version, rt-1.
	resaved := func(states.Extended) states.Event {
		return states.Loaded{At: epoch, Record: recFresh, Version: "v1-resaved"}
	}
	rereadResaved := onReread(recFresh, "v1-resaved")

	t.Run("spent_token_is_recorded", func(t *testing.T) {
		m := reachByPath(t, transitions.Policy{}, unsaved...)
		x := m.Extended()
		if !x.Spent.Equal(recFresh.Tokens.RefreshToken) || !x.Unsaved {
			t.Fatalf("Spent = %v (rt-1 expected), Unsaved = %v", x.Spent.Equal(recFresh.Tokens.RefreshToken), x.Unsaved)
		}
	})

	t.Run("reread_of_the_spent_token_redeems_the_successor", func(t *testing.T) {
		m := reachByPath(t, transitions.Policy{}, append(unsaved, on401AfterCooldown)...)
		res := stepOK(t, m, rereadResaved(m.Extended()))
		if res.Rule != "reread_unchanged" {
			t.Fatalf("rule = %s, want reread_unchanged", res.Rule)
		}
		redeem, ok := res.Commands[0].(effects.RedeemRefreshToken)
		if !ok || redeem.RefreshToken.Reveal() != "rt-2" {
			t.Fatalf("commands = %v; want the successor rt-2 redeemed", res.Commands)
		}
		if m.Extended().Version != "v1-resaved" {
			t.Errorf("Version = %q; the next save must compare against what is stored now",
				m.Extended().Version)
		}
	})

	t.Run("reload_of_the_spent_token_keeps_and_saves_the_successor", func(t *testing.T) {
		m := reachByPath(t, transitions.Policy{}, unsaved...)
		res := stepOK(t, m, resaved(m.Extended()))
		if res.Rule != "load_keep_unsaved" {
			t.Fatalf("rule = %s, want load_keep_unsaved", res.Rule)
		}
		save, ok := res.Commands[0].(effects.PersistRecord)
		if !ok || save.Record.Tokens.RefreshToken.Reveal() != "rt-2" || save.Expected != "v1-resaved" {
			t.Fatalf("commands = %v; want rt-2 saved over version v1-resaved", res.Commands)
		}
	})

	t.Run("failed_successor_stays_failed_on_reload", func(t *testing.T) {
		m := reachByPath(t, transitions.Policy{}, append(unsaved, on401AfterCooldown, onRereadUnchanged,
			onRejected(states.ReasonExpired))...)
		if m.State() != states.FailedPermanent {
			t.Fatalf("state = %v, want failed_permanent", m.State())
		}
		res := stepOK(t, m, resaved(m.Extended()))
		if res.Rule != "load_same_while_failed" || m.State() != states.FailedPermanent {
			t.Fatalf("rule = %s, state = %v; a store holding the spent token must not revive it",
				res.Rule, m.State())
		}
	})
}
