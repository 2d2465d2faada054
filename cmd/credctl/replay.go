package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

const replayLong = `Replay a trace of events through the state machine and print each
transition — the rule that fired, from which state to which, and the commands
it emitted — WITHOUT running any of them: nothing is read, written or sent.
It answers "what would credfsm do if this happened?".

A trace is a JSON-lines file (FILE, or - for stdin): one JSON object per
line, each naming its "event". Blank lines and lines starting with # are
skipped. The trace's clock starts at 2025-01-01T00:00:00Z and moves only with
"advance"; every event happens at the current trace time.

Outcome events (store_reread ... stores_cleared) refer to the current
generation automatically, as the runner's outcomes do; give "generation" to
replay an outcome for an older one (the machine ignores it).

  {"event":"advance","by":"10m"}            move the clock (a Go duration)
  {"event":"loaded","record":REC}           the store was read; no record:
                                            nothing stored; "error":"..."
                                            instead: it could not be read;
                                            "from_env":true: CODEX_API_KEY
  {"event":"login_requested","record":REC}  a person signed in
  {"event":"logout_requested"}
  {"event":"token_requested"}               a caller needs a token
  {"event":"refresh_requested"}             "credctl refresh"
  {"event":"unauthorized","token":"current"}   the API answered 401 for the
                                            current token ("previous": for
                                            the one before it)
  {"event":"woke"}                          a WakeAt timer fired
  {"event":"store_reread"}                  locked and re-read: unchanged;
                                            with "record": another process
                                            changed it ({"mode":"none"}:
                                            signed out)
  {"event":"reread_failed","unreadable":false,"error":"..."}
  {"event":"refresh_succeeded","access_expires_in":"1h","rotated":true}
  {"event":"refresh_failed","status":503,"retry_after":"30s","jitter":0.5}
  {"event":"refresh_rejected","reason":"refresh_token_reused"}
                                            reasons: refresh_token_expired,
                                            refresh_token_reused,
                                            refresh_token_revoked,
                                            invalid_grant, client_rejected,
                                            refresh_refused, ...
  {"event":"host_refresh_succeeded","access_expires_in":"1h","account_id":"..."}
  {"event":"host_refresh_failed","error":"..."}
  {"event":"persisted"}
  {"event":"persist_failed","conflict":true}
  {"event":"stores_cleared"}

REC describes a credential without any secret (placeholder tokens are made
up): {"mode":"chatgpt"|"apikey"|"chatgptAuthTokens"|"none",
"access_expires_in":"1h" (omit: an opaque token), "last_refresh_ago":"2h"
(default: as if the access token were issued for one hour, or now),
"email":"...", "plan":"pro", "account_id":"..."}, or "current" for the
credential the machine holds now.

A line that is not valid JSON, names an unknown event or has a field the
event does not take is an error naming its line and field (exit 1), and
nothing is replayed. An event the machine refuses (not permitted in the
state, or an outcome for an older generation) is printed as refused, and the
replay goes on. See cmd/credctl/testdata/replay/ for examples.`

const replayExample = `  credctl replay cmd/credctl/testdata/replay/lifecycle.jsonl
  printf '%s\n' '{"event":"loaded","record":{"mode":"chatgpt","access_expires_in":"2m"}}' \
                '{"event":"token_requested"}' | credctl replay -`

func (a *app) replayCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "replay FILE|-",
		Short:   "Print what the state machine does with a trace of events, running nothing",
		Long:    replayLong,
		Example: replayExample,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return badInput("replay takes one trace file (or - for stdin); see " +
					"\"credctl replay --help\"")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			var r io.Reader = a.stdin
			if name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return badInput("cannot read the trace %s: %v", name, unwrapPathError(err))
				}
				defer f.Close()
				r = f
			} else {
				name = "stdin"
			}
			entries, err := parseTrace(r)
			if err != nil {
				return badInput("trace %s: %v", name, err)
			}
			replay(a.stdout, entries)
			return nil
		},
	}
}

// traceStart is the moment every trace starts at. A fixed time keeps the
// output of a trace the same from run to run.
var traceStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// replayer steps a Machine with the events of a trace. It plays the role
// of the host and the runner, but only on paper: commands are printed,
// never run.
type replayer struct {
	m   *engine.Machine
	now time.Time
	w   io.Writer

	serial int       // numbers placeholder tokens and versions
	wakeAt time.Time // the pending WakeAt, zero when none
}

// replay prints what each entry does to a machine at the table's initial
// state.
func replay(w io.Writer, entries []traceEntry) {
	r := &replayer{m: engine.NewMachine(nil, transitions.Policy{}), now: traceStart, w: w}
	fmt.Fprintf(w, "trace starts at %s in %s (generation 0); nothing is executed\n\n",
		traceStart.Format(time.RFC3339), r.m.State())
	fmt.Fprintf(w, "%4s  %-8s  %-22s  %s\n", "line", "time", "event", "what the machine does")
	for _, e := range entries {
		r.step(e)
	}
	ext := r.m.Extended()
	fmt.Fprintf(w, "\nend: %s (generation %d)", r.m.State(), ext.Generation)
	if ext.Failure != states.ReasonNone {
		fmt.Fprintf(w, ", failed: %s", ext.Failure)
	}
	fmt.Fprintln(w)
}

func (r *replayer) step(e traceEntry) {
	at := "+" + span(r.now.Sub(traceStart))
	if e.event == traceAdvance {
		r.now = r.now.Add(e.by)
		note := ""
		if !r.wakeAt.IsZero() && !r.wakeAt.After(r.now) {
			note = fmt.Sprintf(`; the WakeAt for %s is due: a host would now feed {"event":"woke"}`,
				r.offset(r.wakeAt))
			r.wakeAt = time.Time{}
		}
		fmt.Fprintf(r.w, "%4d  %-8s  %-22s  clock moves to %s%s\n", e.line, at, "advance "+span(e.by),
			r.offset(r.now), note)
		return
	}

	ev := r.event(e)
	before := r.m.Extended().Generation
	res, err := r.m.Step(ev)
	if err != nil {
		fmt.Fprintf(r.w, "%4d  %-8s  %-22s  %s\n", e.line, at, e.event, r.refusal(err))
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s -> %s  [%s]", res.From, res.To, res.Rule)
	if len(res.Commands) > 0 {
		b.WriteString("  then " + r.commands(res.Commands))
	}
	if res.Generation != before {
		fmt.Fprintf(&b, "  (generation %d)", res.Generation)
	}
	fmt.Fprintf(r.w, "%4d  %-8s  %-22s  %s\n", e.line, at, e.event, b.String())
}

// refusal describes an event the machine did not take.
func (r *replayer) refusal(err error) string {
	var np *engine.NotPermittedError
	switch {
	case errors.As(err, &np):
		var kinds []string
		for _, k := range r.m.Permitted() {
			kinds = append(kinds, k.String())
		}
		return fmt.Sprintf("REFUSED: not permitted in %s (permitted: %s)", np.State,
			strings.Join(kinds, ", "))
	case errors.Is(err, engine.ErrStaleOutcome):
		return "IGNORED: " + strings.TrimPrefix(err.Error(), "engine: ")
	}
	return "REFUSED: " + strings.TrimPrefix(err.Error(), "engine: ")
}

// commands renders the commands of a step, with the time of a WakeAt.
func (r *replayer) commands(cmds []effects.Command) string {
	var names []string
	for _, c := range cmds {
		name := c.Kind().String()
		if w, ok := c.(effects.WakeAt); ok {
			name += "(" + r.offset(w.At) + ")"
			r.wakeAt = w.At
		}
		names = append(names, name)
	}
	return strings.Join(names, ", ")
}

func (r *replayer) offset(t time.Time) string {
	return "+" + span(t.Sub(traceStart))
}

// generation is the generation an outcome or a 401 refers to.
func (r *replayer) generation(e traceEntry) uint64 {
	cur := r.m.Extended().Generation
	switch {
	case e.generation != nil:
		return *e.generation
	case e.previous && cur > 0:
		return cur - 1
	}
	return cur
}

// event builds the machine event of an entry at the current trace time.
func (r *replayer) event(e traceEntry) states.Event {
	now, gen, ext := r.now, r.generation(e), r.m.Extended()
	var errFor = func(def string) error {
		if e.errText != "" {
			return errors.New(e.errText)
		}
		return errors.New(def)
	}

	switch e.kind {
	case states.KindLoaded:
		ev := states.Loaded{At: now, FromEnv: e.fromEnv}
		switch {
		case e.errText != "":
			ev.Err = errors.New(e.errText)
			ev.Version = r.version()
		case e.current:
			ev.Record, ev.Version = ext.Record, ext.Version
		case e.record != nil && e.record.mode != states.ModeNone:
			ev.Record, ev.Version = r.record(*e.record), r.version()
		}
		return ev
	case states.KindLoginRequested:
		return states.LoginRequested{At: now, Record: r.record(*e.record)}
	case states.KindLogoutRequested:
		return states.LogoutRequested{At: now}
	case states.KindTokenRequested:
		return states.TokenRequested{At: now}
	case states.KindRefreshRequested:
		return states.RefreshRequested{At: now}
	case states.KindUnauthorized:
		return states.Unauthorized{At: now, Generation: gen}
	case states.KindWoke:
		return states.Woke{At: now, Generation: gen}
	case states.KindStoreReread:
		ev := states.StoreReread{At: now, Generation: gen, Record: ext.Record, Version: ext.Version}
		if e.record != nil {
			ev.Record, ev.Version = states.Record{}, states.NoVersion
			if e.record.mode != states.ModeNone {
				ev.Record, ev.Version = r.record(*e.record), r.version()
			}
		}
		return ev
	case states.KindRereadFailed:
		return states.RereadFailed{At: now, Generation: gen, Unreadable: e.unreadable,
			Err: errFor("the store could not be locked or read")}
	case states.KindRefreshSucceeded:
		return states.RefreshSucceeded{At: now, Generation: gen, Grant: r.grant(e, ext, true)}
	case states.KindRefreshFailed:
		return states.RefreshFailed{At: now, Generation: gen, Jitter: e.jitter,
			Err: &states.RefreshError{Status: e.status, RetryAfter: e.retryAfter, Detail: e.errText}}
	case states.KindRefreshRejected:
		status := e.status
		if status == 0 {
			status = 401
		}
		return states.RefreshRejected{At: now, Generation: gen, Err: &states.RefreshError{
			Permanent: true, Reason: e.reason, Status: status, Code: e.reason.String()}}
	case states.KindHostRefreshSucceeded:
		return states.HostRefreshSucceeded{At: now, Generation: gen, Grant: r.grant(e, ext, false)}
	case states.KindHostRefreshFailed:
		return states.HostRefreshFailed{At: now, Generation: gen, Jitter: e.jitter,
			Err: errFor("the host did not return tokens")}
	case states.KindPersisted:
		return states.Persisted{At: now, Generation: gen, Version: r.version()}
	case states.KindPersistFailed:
		return states.PersistFailed{At: now, Generation: gen, Conflict: e.conflict,
			Err: errFor("the save failed")}
	case states.KindStoresCleared:
		ev := states.StoresCleared{At: now, Generation: gen,
			Removals: []states.Removal{{Backend: "store (replay)", Removed: true}}}
		if e.errText != "" {
			ev.Err = errors.New(e.errText)
		}
		return ev
	}
	// parseTraceLine accepts only the kinds above; a new kind needs a case
	// here and an entry in traceFields (a test checks both).
	panic("credctl: replay has no event for " + e.kind.String())
}

// record makes up a credential matching spec, with placeholder tokens.
func (r *replayer) record(spec recordSpec) states.Record {
	r.serial++
	n := r.serial
	rec := states.Record{
		Mode: spec.mode,
		Claims: states.Claims{Email: spec.email, Plan: states.Plan(spec.plan),
			AccountID: spec.accountID},
	}
	// Tokens are usually issued for an hour. Unless told otherwise, date
	// the last refresh so, since the staleness window depends on the
	// lifetime: a token that lives two minutes is stale after one.
	switch {
	case spec.lastRefreshAgo != nil:
		rec.LastRefresh = r.now.Add(-*spec.lastRefreshAgo)
	case spec.expiresIn != nil && *spec.expiresIn < time.Hour:
		rec.LastRefresh = r.now.Add(*spec.expiresIn - time.Hour)
	default:
		rec.LastRefresh = r.now
	}
	if spec.mode == states.ModeAPIKey {
		rec.APIKey = placeholder("key", n)
		return rec
	}
	rec.Tokens = states.Tokens{
		IDToken:     placeholder("id", n),
		AccessToken: placeholder("access", n),
		AccountID:   spec.accountID,
	}
	if spec.mode == states.ModeManaged {
		rec.Tokens.RefreshToken = placeholder("refresh", n)
	}
	if spec.expiresIn != nil {
		rec.AccessExpiry = r.now.Add(*spec.expiresIn)
	}
	return rec
}

// grant makes up the tokens of a successful refresh.
func (r *replayer) grant(e traceEntry, ext states.Extended, managed bool) states.Grant {
	r.serial++
	n := r.serial
	lifetime := time.Hour
	if e.expiresIn != nil {
		lifetime = *e.expiresIn
	}
	claims := ext.Record.Claims
	if e.accountID != "" {
		claims.AccountID = e.accountID
	}
	g := states.Grant{
		IDToken:      placeholder("id", n),
		AccessToken:  placeholder("access", n),
		Claims:       claims,
		AccessExpiry: r.now.Add(lifetime),
	}
	if managed && e.rotated {
		g.RefreshToken = placeholder("refresh", n)
	}
	return g
}

func (r *replayer) version() states.Version {
	r.serial++
	return states.Version(fmt.Sprintf("v%d", r.serial))
}

// placeholder is a made-up token: a replay never holds a real secret.
func placeholder(what string, n int) states.Secret {
	return states.NewSecret(fmt.Sprintf("replay-%s-%d", what, n))
}
