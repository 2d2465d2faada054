package states_test

import (
	"encoding/json"
	"regexp"
	"testing"

	"github.com/credfsm/credfsm/states"
)

// Names appear in diagrams, traces and on the command line: they are
// snake_case (Mermaid-safe), unique, and parse back to what they name.
var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func TestStateNames(t *testing.T) {
	want := []string{"logged_out", "api_key", "fresh", "stale", "refreshing",
		"external_refresh", "failed_permanent"}
	all := states.All()
	if len(all) != len(want) {
		t.Fatalf("All() has %d states, want %d", len(all), len(want))
	}
	for i, s := range all {
		if got := s.String(); got != want[i] {
			t.Errorf("state %d is %q, want %q", i, got, want[i])
		}
		back, err := states.ParseState(s.String())
		if err != nil || back != s {
			t.Errorf("ParseState(%q) = %v, %v", s, back, err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("json.Marshal(%v): %v", s, err)
		}
		var decoded states.State
		if err := json.Unmarshal(b, &decoded); err != nil || decoded != s {
			t.Errorf("JSON round trip of %v gave %v, %v", s, decoded, err)
		}
		if s.Summary() == "" || s.Summary() == s.String() {
			t.Errorf("state %v has no summary", s)
		}
	}
	if states.State(0) != states.LoggedOut {
		t.Error("the zero State is not logged_out")
	}
	if _, err := states.ParseState("Fresh"); err == nil {
		t.Error(`ParseState("Fresh") succeeded; names are case-sensitive`)
	}
	if _, err := states.State(7).MarshalText(); err == nil {
		t.Error("an invalid state marshals")
	}
}

func TestStateClasses(t *testing.T) {
	tests := []struct {
		s                 states.State
		terminal, waiting bool
	}{
		{states.LoggedOut, true, false},
		{states.APIKey, false, false},
		{states.Fresh, false, false},
		{states.Stale, false, false},
		{states.Refreshing, false, true},
		{states.ExternalRefresh, false, true},
		{states.FailedPermanent, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.s.String(), func(t *testing.T) {
			if got := tt.s.Terminal(); got != tt.terminal {
				t.Errorf("Terminal() = %v, want %v", got, tt.terminal)
			}
			if got := tt.s.Waiting(); got != tt.waiting {
				t.Errorf("Waiting() = %v, want %v", got, tt.waiting)
			}
		})
	}
}

func TestEventKindNames(t *testing.T) {
	kinds := states.EventKinds()
	if len(kinds) != 17 {
		t.Fatalf("EventKinds() has %d kinds, want 17", len(kinds))
	}
	seen := map[string]bool{}
	for _, k := range kinds {
		name := k.String()
		if !snakeCase.MatchString(name) || seen[name] {
			t.Errorf("kind %d is named %q: not a unique snake_case name", uint8(k), name)
		}
		seen[name] = true
		if back, err := states.ParseEventKind(name); err != nil || back != k {
			t.Errorf("ParseEventKind(%q) = %v, %v", name, back, err)
		}
	}
	if states.EventKind(17).Valid() || states.EventKind(17).String() != "event(17)" {
		t.Errorf("an unknown kind is valid or misnamed: %q", states.EventKind(17))
	}
}

func TestReasonNames(t *testing.T) {
	for r := states.ReasonNone; r.String() != "reason(9)"; r++ {
		name := r.String()
		if !snakeCase.MatchString(name) {
			t.Errorf("reason %d is named %q", uint8(r), name)
		}
		if back, err := states.ParseReason(name); err != nil || back != r {
			t.Errorf("ParseReason(%q) = %v, %v", name, back, err)
		}
		if r != states.ReasonNone && (r.Describe() == "" || r.NextStep() == "") {
			t.Errorf("reason %v does not say what happened and what to do", r)
		}
	}
}

func TestModeWireNames(t *testing.T) {
	for _, m := range []states.Mode{states.ModeAPIKey, states.ModeManaged, states.ModeExternal} {
		if back, err := states.ParseMode(m.String()); err != nil || back != m {
			t.Errorf("ParseMode(%q) = %v, %v", m, back, err)
		}
	}
	if _, err := states.ParseMode("none"); err == nil {
		t.Error(`ParseMode("none") succeeded; no credential has that mode`)
	}
}
