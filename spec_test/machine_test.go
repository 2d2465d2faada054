package spec_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/engine/enginetest"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// TestMachineMatchesModel feeds random events straight into a Machine and
// into the reference model, and compares every step: the refusal class, the
// transition, the commands with their arguments, and the extended state.
// It is the cheap half of the suite: no I/O, thousands of steps a second,
// and it pins the model down before the Manager suite relies on it.
func TestMachineMatchesModel(t *testing.T) { rapid.Check(t, machineMatchesModel) }

// FuzzMachineMatchesModel is the same property under Go's coverage-guided
// fuzzer; go test runs its seeds, and .ci/fuzz searches for new inputs.
func FuzzMachineMatchesModel(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(rapid.MakeFuzz(machineMatchesModel))
}

func machineMatchesModel(t *rapid.T) {
	policy := policyGen().Draw(t, "policy")
	mach := engine.NewMachine(nil, transitionsPolicy(policy))
	model := enginetest.NewModel(policy)
	now := suiteStart

	t.Repeat(map[string]func(*rapid.T){
		"event": func(t *rapid.T) {
			ev := enginetest.Events(model, now).Draw(t, "event")
			if ev.Time().After(now) {
				now = ev.Time()
			}
			before := *model
			got, gotErr := mach.Step(ev)
			want, wantErr := model.Step(ev)
			if c, w := errorClass(gotErr), errorClass(wantErr); c != w {
				t.Fatalf("%s in %s: machine says %v, model says %v", ev.Kind(), before.State, gotErr, wantErr)
			}
			if wantErr != nil {
				return
			}
			gotStep := enginetest.Step{Event: got.Event, From: got.From, To: got.To,
				Commands: got.Commands, Generation: got.Generation}
			if d := cmp.Diff(want, gotStep, cmpopts.EquateEmpty()); d != "" {
				t.Fatalf("%s in %s (rule %s): step differs (-model +machine):\n%s",
					ev.Kind(), before.State, got.Rule, d)
			}
			if d := cmp.Diff(modelExtended(model), machineExtended(mach.Extended())); d != "" {
				t.Fatalf("%s in %s (rule %s): extended state differs (-model +machine):\n%s",
					ev.Kind(), before.State, got.Rule, d)
			}
		},
	})
}

// extended is the part of the extended state the model tracks.
type extended struct {
	Record     states.Record
	Version    states.Version
	Generation uint64
	FromEnv    bool
	Failure    states.Reason
	HasError   bool
	RetryAt    time.Time
	Attempts   int
	Unsaved    bool
	Spent      states.Secret
	QuietUntil time.Time
	QuietAbove uint64
}

func modelExtended(m *enginetest.Model) extended {
	return extended{m.Record, m.Version, m.Generation, m.FromEnv, m.Failure, m.HasError, m.RetryAt,
		m.Attempts, m.Unsaved, m.Spent, m.QuietUntil, m.QuietAbove}
}

func machineExtended(e states.Extended) extended {
	return extended{e.Record, e.Version, e.Generation, e.FromEnv, e.Failure, e.LastError != "",
		e.RetryAt, e.Attempts, e.Unsaved, e.Spent, quietUntil(e), e.RecoveryFrom}
}

// quietUntil is when the cooldown of the machine's last recovery ends, under
// the default policy the suite runs with.
func quietUntil(e states.Extended) time.Time {
	if e.RecoveryAt.IsZero() {
		return time.Time{}
	}
	return e.RecoveryAt.Add(transitions.DefaultRecoveryCooldown)
}

// errorClass names the sentinel an error from Step wraps.
func errorClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, engine.ErrNotPermitted):
		return "not permitted"
	case errors.Is(err, engine.ErrStaleOutcome):
		return "stale outcome"
	case errors.Is(err, engine.ErrInvalidEvent):
		return "invalid event"
	}
	return "other: " + err.Error()
}

// policyGen draws the policy a run works under: the default skew or one so
// wide that the half-life cap decides, and each kind of restriction.
func policyGen() *rapid.Generator[enginetest.Policy] {
	return rapid.Custom(func(t *rapid.T) enginetest.Policy {
		return enginetest.Policy{
			Skew:            rapid.SampledFrom([]time.Duration{0, 45 * time.Minute}).Draw(t, "skew"),
			ForcedMethod:    rapid.SampledFrom([]string{"", "chatgpt", "api"}).Draw(t, "forced method"),
			ForcedWorkspace: rapid.SampledFrom([]string{"", enginetest.WorkspaceMain}).Draw(t, "forced workspace"),
		}
	})
}

// transitionsPolicy is p as the engine takes it.
func transitionsPolicy(p enginetest.Policy) transitions.Policy {
	return transitions.Policy{
		Skew:            p.Skew,
		ForcedMethod:    transitions.Method(p.ForcedMethod),
		ForcedWorkspace: p.ForcedWorkspace,
	}
}

// suiteStart is where every run's clock starts: a whole second, because the
// token server truncates expiry times to seconds.
var suiteStart = time.Date(2026, time.May, 4, 8, 0, 0, 0, time.UTC)
