package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/replay")

// TestReplayGolden replays every trace in testdata/replay and compares what
// credctl prints with the .golden file next to it. Run with -update after a
// deliberate change to the table or the output, and read the diff.
func TestReplayGolden(t *testing.T) {
	traces, err := filepath.Glob("testdata/replay/*.jsonl")
	if err != nil || len(traces) == 0 {
		t.Fatalf("no traces in testdata/replay (%v)", err)
	}
	for _, trace := range traces {
		name := strings.TrimSuffix(filepath.Base(trace), ".jsonl")
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"replay", trace}, strings.NewReader(""), &stdout, &stderr,
				func(string) string { return "" })
			if code != exitOK || stderr.Len() > 0 {
				t.Fatalf("replay %s: exit %d, stderr %q", trace, code, stderr.String())
			}

			golden := strings.TrimSuffix(trace, ".jsonl") + ".golden"
			if *update {
				if err := os.WriteFile(golden, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestReplayGolden -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), stdout.String()); diff != "" {
				t.Errorf("replay %s (-golden +got):\n%s", trace, diff)
			}
		})
	}
}

// TestTraceCoversEveryEvent: every event kind of the machine can be written
// in a trace, and replay builds an event of that kind for it.
func TestTraceCoversEveryEvent(t *testing.T) {
	for _, k := range states.EventKinds() {
		t.Run(k.String(), func(t *testing.T) {
			if _, ok := traceFields[k.String()]; !ok {
				t.Fatalf("traceFields has no entry for %s", k)
			}
			line := `{"event":"` + k.String() + `"`
			switch k {
			case states.KindLoginRequested:
				line += `,"record":{"mode":"apikey"}`
			case states.KindRefreshRejected:
				line += `,"reason":"refresh_token_expired"`
			}
			entries, err := parseTrace(strings.NewReader(line + "}\n"))
			if err != nil {
				t.Fatal(err)
			}
			r := &replayer{m: engine.NewMachine(nil, transitions.Policy{}), now: traceStart}
			if got := r.event(entries[0]).Kind(); got != k {
				t.Errorf("event kind %s, want %s", got, k)
			}
		})
	}
	var names []string
	for name := range traceFields {
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) != len(states.EventKinds())+1 {
		t.Errorf("traceFields has %d entries, want one per event kind and advance: %v",
			len(names), names)
	}
}

// TestTraceErrors: each malformed line is refused with its line number and
// the field at fault.
func TestTraceErrors(t *testing.T) {
	tests := []struct {
		name, trace, want string
	}{
		{"not JSON", "{\n", "line 1: not valid JSON (syntax error at byte 1)"},
		{"not an object", `["advance"]`, "line 1: not a JSON object"},
		{"no event", `{"by":"1m"}`, `line 1: field "event": missing; every line names its event`},
		{"event not a string", `{"event":3}`, `line 1: field "event": want a string`},
		{"unknown event", "\n\n" + `{"event":"exploded"}`,
			`line 3: field "event": unknown event "exploded"`},
		{"field of another event", `{"event":"woke","by":"1m"}`,
			`line 1: field "by": not a field of woke (it takes: generation)`},
		{"field of no event", `{"event":"logout_requested","force":true}`,
			`line 1: field "force": not a field of logout_requested (it takes: no other field)`},
		{"advance without by", `{"event":"advance"}`, `line 1: field "by": missing`},
		{"advance backwards", `{"event":"advance","by":"-1m"}`,
			`line 1: field "by": want a positive duration such as "10m"`},
		{"advance by a bad duration", `{"event":"advance","by":"soon"}`,
			`line 1: field "by": want a duration such as "10m"`},
		{"bad expiry", `{"event":"loaded","record":{"mode":"chatgpt","access_expires_in":"1 h"}}`,
			`line 1: field "record.access_expires_in": want a duration such as "1h", or "-1h" ` +
				`for a token that has already expired`},
		{"line too long", "\n" + `{"event":"woke","error":"` + strings.Repeat("x", maxTraceLine) +
			`"}` + "\n", "line 2: longer than 1048575 bytes, the most a trace line may hold"},
		{"bad duration", `{"event":"advance","by":10}`,
			`line 1: field "by": want a duration string`},
		{"login without record", `{"event":"login_requested"}`, `line 1: field "record": missing`},
		{"record without mode", `{"event":"loaded","record":{}}`,
			`line 1: field "record.mode": missing`},
		{"record with bad mode", `{"event":"loaded","record":{"mode":"oauth"}}`,
			`line 1: field "record.mode": want "chatgpt"`},
		{"record with unknown field", `{"event":"loaded","record":{"mode":"apikey","key":"x"}}`,
			`line 1: field "record.key": not a field of a record`},
		{"record and error", `{"event":"loaded","record":"current","error":"x"}`,
			`line 1: field "error": a load either found a record`},
		{"token and generation", `{"event":"unauthorized","token":"current","generation":1}`,
			`line 1: field "token": give "token" or "generation", not both`},
		{"bad token", `{"event":"unauthorized","token":"old"}`,
			`line 1: field "token": want "current" or "previous"`},
		{"bad generation", `{"event":"woke","generation":-1}`,
			`line 1: field "generation": want a whole number`},
		{"rejected without reason", `{"event":"refresh_rejected"}`,
			`line 1: field "reason": missing`},
		{"rejected for no reason", `{"event":"refresh_rejected","reason":"none"}`,
			`line 1: field "reason": want one of`},
		{"bad status", `{"event":"refresh_failed","status":"503"}`,
			`line 1: field "status": want an HTTP status`},
		{"bad jitter", `{"event":"refresh_failed","jitter":1}`,
			`line 1: field "jitter": want a number in [0, 1)`},
		{"bad flag", `{"event":"persist_failed","conflict":"yes"}`,
			`line 1: field "conflict": want true or false`},
		{"repeated member", `{"event":"advance","by":"1m","by":"2m"}`,
			`line 1: member "by" appears twice`},
		{"repeated odd member", `{"event":"woke","sk-Secret!":1,"sk-Secret!":2}`,
			`line 1: member (a name that is not a field of any event) appears twice`},
		{"advance past a century", `{"event":"advance","by":"876001h"}`,
			`line 1: field "by": longer than 100 years`},
		{"advances adding up past a century", strings.Repeat(`{"event":"advance","by":"500000h"}`+"\n", 2),
			`line 2: field "by": the trace's clock would pass`},
		{"byte order mark on a later line", "{\"event\":\"woke\"}\n\ufeff{\"event\":\"woke\"}",
			"line 2: not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseTrace(strings.NewReader(tt.trace))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got error %v, want one starting %q", err, tt.want)
			}
		})
	}
}

// TestTraceByteOrderMark: a trace saved by an editor that starts UTF-8
// files with a byte order mark parses as without it.
func TestTraceByteOrderMark(t *testing.T) {
	entries, err := parseTrace(strings.NewReader("\ufeff{\"event\":\"token_requested\"}\n"))
	if err != nil || len(entries) != 1 || entries[0].kind != states.KindTokenRequested {
		t.Fatalf("got %d entries, err %v; want the one token_requested", len(entries), err)
	}
}

// TestAdvanceHints: what the message for a bad "by" suggests is accepted.
func TestAdvanceHints(t *testing.T) {
	for _, by := range []string{`"soon"`, `10`, `"-1m"`, `"0s"`} {
		_, err := parseTrace(strings.NewReader(`{"event":"advance","by":` + by + `}`))
		if err == nil {
			t.Fatalf("by %s: accepted", by)
		}
		_, example, ok := strings.Cut(err.Error(), "such as ")
		if !ok {
			t.Fatalf("by %s: %v gives no example", by, err)
		}
		example, _, _ = strings.Cut(example, ";")
		line := `{"event":"advance","by":` + example + `}`
		if _, err := parseTrace(strings.NewReader(line)); err != nil {
			t.Errorf("by %s: the example %s is refused: %v", by, example, err)
		}
	}
}
