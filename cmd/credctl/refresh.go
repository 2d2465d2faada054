package main

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
)

const refreshLong = `Refresh the OAuth tokens now, stale or not, and report the outcome: one
redemption of the refresh token at the token endpoint, the new tokens saved
in the Codex format. Nothing is printed that could be used as a credential.

If another process (Codex itself, say) already refreshed the tokens, they are
adopted from the store and nothing is redeemed: redeeming a refresh token a
second time would end the login.

Exit codes as for "credctl token": 2 when not signed in, 3 when the
provider refused the refresh for good, 4 when it failed for now, 1 for an
API key (never refreshed) and other errors.`

func (a *app) refreshCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "refresh",
		Short:   "Refresh the tokens now and report the outcome",
		Long:    refreshLong,
		Example: "  credctl refresh\n  credctl -v refresh   # with each transition on stderr",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withSession(cmd, 0, a.refresh)
		},
	}
}

// refresh forces one refresh and reports what changed.
func (a *app) refresh(ctx context.Context, s *session) error {
	before := s.m.Snapshot()

	var mu sync.Mutex
	var rules []string
	s.m.Subscribe(func(t engine.Transition) {
		mu.Lock()
		rules = append(rules, t.Rule)
		mu.Unlock()
	})
	err := s.m.Refresh(ctx)
	after := s.m.Snapshot()
	s.m.Close() // delivers every transition

	if err != nil {
		if errors.Is(err, engine.ErrTransient) && after.Mode == states.ModeExternal {
			return &cliError{code: exitError, err: err, msg: "credctl cannot refresh " +
				"these tokens: the application that stored them (auth_mode " +
				"chatgptAuthTokens) refreshes them itself"}
		}
		return tokenFailure(err, after, s.home)
	}
	if slices.Contains(rules, "reread_adopt_fresh") {
		a.out("another process had already refreshed the tokens; adopted them from " +
			"the store, nothing redeemed")
	} else {
		a.out("refreshed: new tokens saved to %s", storeLine(after.Store))
	}
	if !after.Expiry.IsZero() {
		a.out("access token valid until %s (%s)", clock(after.Expiry),
			until(after.Expiry, time.Now()))
	}
	if !before.LastRefresh.IsZero() && !after.LastRefresh.IsZero() {
		a.out("last refresh %s (was %s)", clock(after.LastRefresh), clock(before.LastRefresh))
	}
	if after.Unsaved {
		writeLine(a.stderr, "credctl: warning: "+after.LastError)
	}
	return nil
}
