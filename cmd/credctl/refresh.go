package main

import (
	"context"
	"errors"
	"slices"
	"strings"
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
API key (never refreshed) and other errors, including new tokens that could
not be saved (the store changed meanwhile, say by a logout elsewhere).`

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
	var adopted bool
	if err != nil {
		adopted, err = s.adoptedAfterRefusal(ctx, err)
	}
	if adopted && s.m.Snapshot().State != states.Fresh {
		err = s.m.Refresh(ctx)
	}
	s.m.Close() // delivers every transition; lets a redemption already sent finish
	after := s.m.Snapshot()
	if errors.Is(err, context.DeadlineExceeded) && !after.Unsaved {
		if _, late := refreshedLate(s.opened, after, s.work.sent()); late {
			// What was asked for is done: a retry would only spend
			// another refresh token.
			writeLine(a.stderr, "credctl: warning: the refresh took longer than --timeout; "+
				"it was let finish, so that the new tokens it brought are not lost")
			err = nil
		}
	}

	if err != nil {
		if errors.Is(err, engine.ErrTransient) && after.Mode == states.ModeExternal {
			return &cliError{code: exitError, err: err, msg: "credctl cannot refresh " +
				"these tokens: the application that stored them (auth_mode " +
				"chatgptAuthTokens) refreshes them itself"}
		}
		return tokenFailure(err, after, s.home)
	}
	if after.Unsaved {
		return unsavedRefresh(after)
	}
	switch {
	case adopted && after.State == states.Fresh && !slices.Contains(rules, "persisted_refresh"):
		a.out("the provider refused the refresh token as already used or no longer valid, " +
			"but another program had meanwhile saved new tokens in the store; adopted them")
	case slices.Contains(rules, "reread_adopt_fresh"):
		a.out("another process had already refreshed the tokens; adopted them from " +
			"the store, nothing redeemed")
	default:
		a.out("refreshed: new tokens saved to %s", storeLine(after.Store))
	}
	if !after.Expiry.IsZero() {
		a.out("access token valid until %s (%s)", clock(after.Expiry),
			until(after.Expiry, time.Now()))
	}
	if !before.LastRefresh.IsZero() && !after.LastRefresh.IsZero() {
		a.out("last refresh %s (was %s)", clock(after.LastRefresh), clock(before.LastRefresh))
	}
	return nil
}

// unsavedRefresh reports a refresh whose new tokens could not be saved (the
// store changed under it, say, because another process signed out). They
// live only in this process, which is about to exit, and a provider that
// rotates refresh tokens has retired the one they replace: that is a
// failure, not a success with a warning.
func unsavedRefresh(snap engine.Snapshot) error {
	return &cliError{code: exitError, msg: "the tokens were refreshed, but " + unsavedLine(snap)}
}

// unsavedLine says that the new tokens in snap could not be saved, why, and
// what to do. The reason is the snapshot's LastError, which never holds a
// secret.
func unsavedLine(snap engine.Snapshot) string {
	why := strings.TrimPrefix(snap.LastError, "the credential could not be saved: ")
	if why == "" {
		why = "no reason given"
	}
	return "the new tokens could not be saved (" + why + ") and are lost when credctl " +
		`exits; "credctl status" shows what is stored now`
}
