package transitions

import (
	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/states"
)

// Apply computes what firing r for in produces: the extended state after the
// rule's update, and the rule's commands filled in from it, in order. It is
// pure; the caller decides whether to make the result current.
func Apply(r Rule, in Input) (states.Extended, []effects.Command) {
	next := *in.Ext
	if r.Update.Apply != nil {
		r.Update.Apply(in, &next)
	}
	return next, buildCommands(r.Commands, in, &next)
}

// buildCommands turns command kinds into commands, reading their arguments
// from the extended state the rule leaves behind.
func buildCommands(kinds []effects.Kind, in Input, next *states.Extended) []effects.Command {
	if len(kinds) == 0 {
		return nil
	}
	gen := next.Generation
	out := make([]effects.Command, 0, len(kinds))
	for _, k := range kinds {
		switch k {
		case effects.KindPersistRecord:
			expected := next.Version
			if in.Event.Kind() == states.KindLoginRequested {
				// A person signing in replaces whatever is stored.
				expected = states.AnyVersion
			}
			out = append(out, effects.PersistRecord{Generation: gen, Record: next.Record, Expected: expected})
		case effects.KindDeleteStores:
			out = append(out, effects.DeleteStores{Generation: gen})
		case effects.KindLockAndReread:
			out = append(out, effects.LockAndReread{Generation: gen})
		case effects.KindReleaseLock:
			out = append(out, effects.ReleaseLock{})
		case effects.KindRedeemRefreshToken:
			out = append(out, effects.RedeemRefreshToken{
				Generation: gen, RefreshToken: next.Record.Tokens.RefreshToken})
		case effects.KindAskHost:
			out = append(out, effects.AskHost{Generation: gen, PreviousAccountID: next.Record.AccountID()})
		case effects.KindWakeAt:
			// Wake when the tokens turn stale; tokens that never go stale by
			// time alone need no timer.
			if at, ok := in.Policy.StaleAt(next.Record); ok {
				out = append(out, effects.WakeAt{Generation: gen, At: at})
			}
		case effects.KindNotifyObservers:
			out = append(out, effects.NotifyObservers{Generation: gen})
		}
	}
	return out
}
