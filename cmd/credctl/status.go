package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/storage"
	"github.com/credfsm/credfsm/transitions"
)

const statusLong = `Show the state of the stored credential: its state in the state machine,
what kind of credential it is, who it belongs to, when the access token
expires, where it is stored, what went wrong if anything, and what to do next.

Status only reads. It never refreshes, never writes, never takes the store's
lock, and never prints a token, not even in part. A credential whose tokens
are near their expiry shows as stale; "credctl token" refreshes it. Under
the report, a small text statechart marks the current state and lists the
transitions that can leave it.

With --json the same facts are printed as one JSON object for scripts. Its
field names are stable; times are RFC 3339 in UTC, null when unknown:

  state, summary, terminal, mode ("none", "apikey", "chatgpt",
  "chatgptAuthTokens"), mode_label, from_env, email, plan, user_id,
  account_id, access_token_expires_at, access_token_expires_in_seconds
  (negative once expired), stale_at, last_refresh, retry_at, last_error,
  failure {reason, description, next_step, detail} or null, next_step,
  unsaved, home, store {kind, location, insecure_fallback, note}

Exit code 0 when the store could be read, whatever the state; 1 when it could
not (the report says why) or on bad flags.`

const statusExample = `  credctl status
  credctl status --json | jq -r .state
  CODEX_HOME=/srv/codex credctl status --store auto`

func (a *app) statusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show the credential's state, owner, expiry and store; never prints a token",
		Long:    statusLong,
		Example: statusExample,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.open(cmd.Context(), 0)
			if err != nil {
				return err
			}
			snap := s.m.Snapshot()
			// The snapshot names the failure; the error behind it says
			// whether the cause lies outside the credential.
			var step string
			if snap.Failure == states.ReasonUnreadableStore {
				if _, err := s.m.Token(cmd.Context()); err != nil {
					step = environmentStep(err, s.home)
				}
			}
			s.m.Close()

			rep := newStatusReport(snap, s.home, time.Now())
			if step != "" {
				rep.NextStep, rep.Failure.NextStep = step, step
				rep.Summary = "the stored credential cannot be read here; see the next step"
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				rep.render(a.stdout, snap.State)
			}
			if snap.Failure == states.ReasonUnreadableStore {
				_, line := permanentLine(snap.Failure, snap.LastError)
				if step != "" {
					line = "cannot read the credential (" + snap.LastError + "); " + step
				}
				return &cliError{code: exitError, msg: line}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object with stable snake_case fields")
	return cmd
}

// statusReport is what status prints. Its JSON names are an interface for
// scripts: add fields, never rename or remove one.
//
// Invariant: no field holds a secret. It is built from engine.Snapshot,
// which holds none.
type statusReport struct {
	State     string `json:"state"`
	Summary   string `json:"summary"`
	Terminal  bool   `json:"terminal"`
	Mode      string `json:"mode"`
	ModeLabel string `json:"mode_label"`
	FromEnv   bool   `json:"from_env"`

	Email     string `json:"email"`
	Plan      string `json:"plan"`
	UserID    string `json:"user_id"`
	AccountID string `json:"account_id"`

	AccessTokenExpiresAt        *time.Time `json:"access_token_expires_at"`
	AccessTokenExpiresInSeconds *int64     `json:"access_token_expires_in_seconds"`
	StaleAt                     *time.Time `json:"stale_at"`
	LastRefresh                 *time.Time `json:"last_refresh"`
	RetryAt                     *time.Time `json:"retry_at"`

	LastError string         `json:"last_error"`
	Failure   *failureReport `json:"failure"`
	NextStep  string         `json:"next_step"`
	Unsaved   bool           `json:"unsaved"`

	Home  string      `json:"home"`
	Store storeReport `json:"store"`
}

type failureReport struct {
	Reason      string `json:"reason"`
	Description string `json:"description"`
	NextStep    string `json:"next_step"`
	Detail      string `json:"detail"`
}

type storeReport struct {
	Kind             string `json:"kind"`
	Location         string `json:"location"`
	InsecureFallback bool   `json:"insecure_fallback"`
	Note             string `json:"note"`
}

func newStatusReport(snap engine.Snapshot, home string, now time.Time) statusReport {
	r := statusReport{
		State:     snap.State.String(),
		Summary:   summary(snap, now),
		Terminal:  snap.State.Terminal(),
		Mode:      snap.Mode.String(),
		ModeLabel: snap.Mode.Label(),
		FromEnv:   snap.FromEnv,
		Email:     snap.Email,
		Plan:      string(snap.Plan),
		UserID:    snap.UserID,
		AccountID: snap.AccountID,

		AccessTokenExpiresAt: utcOrNil(snap.Expiry),
		StaleAt:              utcOrNil(snap.StaleAt),
		LastRefresh:          utcOrNil(snap.LastRefresh),
		RetryAt:              utcOrNil(snap.RetryAt),

		LastError: snap.LastError,
		NextStep:  nextStep(snap, now),
		Unsaved:   snap.Unsaved,
		Home:      home,
		Store: storeReport{
			Kind:             snap.Store.Kind,
			Location:         snap.Store.Location,
			InsecureFallback: snap.Store.InsecureFallback,
			Note:             snap.Store.Note,
		},
	}
	if !snap.Expiry.IsZero() {
		secs := int64(snap.Expiry.Sub(now).Round(time.Second) / time.Second)
		r.AccessTokenExpiresInSeconds = &secs
	}
	if snap.Failure != states.ReasonNone {
		r.Failure = &failureReport{
			Reason:      snap.Failure.String(),
			Description: snap.Failure.Describe(),
			NextStep:    snap.Failure.NextStep(),
			Detail:      snap.LastError,
		}
	}
	return r
}

// summary describes the state in one line. The state's own summary is
// written for tokens credfsm refreshes; host-managed tokens are refreshed by
// the application that stored them, so saying that the next request
// refreshes them would contradict the next step.
func summary(snap engine.Snapshot, now time.Time) string {
	if snap.Mode != states.ModeExternal || snap.State != states.Stale {
		return snap.State.Summary()
	}
	what := "host-managed tokens near expiry"
	if !snap.Expiry.IsZero() && !snap.Expiry.After(now) {
		what = "host-managed tokens that have expired"
	}
	return what + "; the application that stored them refreshes them, not credctl"
}

func utcOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// nextStep says what a person should do now, in one sentence.
func nextStep(snap engine.Snapshot, now time.Time) string {
	switch snap.State {
	case states.LoggedOut:
		return signInHint
	case states.FailedPermanent:
		return snap.Failure.NextStep()
	case states.APIKey:
		if snap.FromEnv {
			return "nothing to do; the key comes from CODEX_API_KEY and is never saved"
		}
		return "nothing to do; an API key is never refreshed"
	case states.Refreshing, states.ExternalRefresh:
		return "wait for the refresh under way to finish"
	}

	if snap.Mode == states.ModeExternal {
		return "nothing credctl can do: these tokens are refreshed by the application that " +
			"stored them (auth_mode chatgptAuthTokens)"
	}
	if snap.State == states.Stale {
		if snap.RetryAt.After(now) {
			return `the last refresh failed; "credctl token" tries again after ` + clock(snap.RetryAt)
		}
		return `"credctl token" (or "credctl refresh") refreshes the tokens now`
	}
	return `nothing to do; "credctl token" refreshes the tokens when they near expiry`
}

// render prints the report for people, then the statechart with the
// current state marked.
func (r statusReport) render(w io.Writer, st states.State) {
	now := time.Now()
	line := func(label, value string) {
		if value != "" {
			fmt.Fprintf(w, "%-14s %s\n", label, printable(value))
		}
	}
	when := func(t *time.Time, what string) string {
		if t == nil {
			return ""
		}
		return what + clock(*t) + " (" + until(*t, now) + ")"
	}

	line("state", r.State+" — "+r.Summary)
	if r.Mode != states.ModeNone.String() {
		cred := r.ModeLabel + " (auth_mode " + r.Mode + ")"
		if r.FromEnv {
			cred += ", from CODEX_API_KEY"
		}
		line("credential", cred)
	}
	line("email", r.Email)
	if r.Plan != "" {
		line("plan", states.Plan(r.Plan).Display())
	}
	line("account", r.AccountID)
	switch {
	case r.AccessTokenExpiresAt != nil && r.AccessTokenExpiresAt.After(now):
		line("access token", when(r.AccessTokenExpiresAt, "expires "))
	case r.AccessTokenExpiresAt != nil:
		line("access token", when(r.AccessTokenExpiresAt, "EXPIRED "))
	case r.Mode == states.ModeManaged.String() || r.Mode == states.ModeExternal.String():
		line("access token", "expiry unknown (an opaque token)")
	}
	line("stale after", when(r.StaleAt, ""))
	line("last refresh", when(r.LastRefresh, ""))
	line("home", r.Home)
	store := r.Store.Kind
	switch {
	case r.Store.Kind == storage.ModeEphemeral.String():
		// Its location is the key of an entry in memory, which means
		// nothing to a person (--json still has it).
		store += " (this process's memory)"
	case r.Store.Location != "":
		store += " " + r.Store.Location
	}
	line("store", store)
	if r.Store.InsecureFallback {
		line("", "WARNING: the OS keyring is not used; the credential is in a plaintext file")
	}
	line("", r.Store.Note)
	if r.Unsaved {
		line("", "WARNING: the tokens in use could not be saved")
	}
	if r.Failure != nil {
		line("failure", r.Failure.Reason+": "+r.Failure.Description)
	}
	line("last error", r.LastError)
	line("retry after", when(r.RetryAt, ""))
	line("next step", r.NextStep)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Statechart (> marks the current state):")
	chart := transitions.Default().Text(st)
	if r.Summary != st.Summary() {
		// The marked state says what the state line above says.
		chart = strings.Replace(chart, st.Summary(), r.Summary, 1)
	}
	fmt.Fprint(w, indent(chart, "  "))
}

// indent prefixes every non-empty line of s.
func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}
