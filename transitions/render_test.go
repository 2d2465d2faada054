package transitions_test

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/looplab/fsm"

	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

// TestStatechartDocIsCurrent is the golden test for the generated document:
// the table is the source, docs/statechart.md its rendering.
func TestStatechartDocIsCurrent(t *testing.T) {
	const path = "../docs/statechart.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the generated statechart: %v; run `go generate ./...`", err)
	}
	want := transitions.Default().Markdown()
	if got := string(b); got != want {
		t.Errorf("docs/statechart.md is stale: run `go generate ./...` and commit the result "+
			"(-file +table):\n%s", cmp.Diff(got, want))
	}
}

func TestMarkdownListsEveryRule(t *testing.T) {
	d := transitions.Default()
	md := d.Markdown()
	if want := fmt.Sprintf("## Rules (%d)", len(d.Rules())); !strings.Contains(md, want) {
		t.Errorf("Markdown() lacks the heading %q", want)
	}
	for i, r := range d.Rules() {
		if row := fmt.Sprintf("| %d | `%s` |", i+1, r.ID); !strings.Contains(md, row) {
			t.Errorf("Markdown() lacks the row %q", row)
		}
	}
	for _, s := range states.All() {
		if !strings.Contains(md, fmt.Sprintf("| `%s` |", s)) {
			t.Errorf("Markdown() does not describe state %s", s)
		}
	}
}

// edgeKey is one arrow of a graph: the looplab event (a rule ID) or a label,
// and the states at both ends.
type edgeKey struct{ Event, From, To string }

func tableEdges(d *transitions.Table) []edgeKey {
	var out []edgeKey
	for _, e := range d.Edges() {
		out = append(out, edgeKey{e.Rule.ID, e.From.String(), e.To.String()})
	}
	return sortedEdges(out)
}

func sortedEdges(es []edgeKey) []edgeKey {
	slices.SortFunc(es, func(a, b edgeKey) int {
		return strings.Compare(a.Event+"\x00"+a.From+"\x00"+a.To, b.Event+"\x00"+b.From+"\x00"+b.To)
	})
	return es
}

var (
	mermaidStart = regexp.MustCompile(`^    \[\*\] --> (\w+)$`)
	mermaidEdge  = regexp.MustCompile(`^    (\w+) --> (\w+): (.+)$`)
)

// TestLooplabAgreesWithTable renders the compiled looplab/fsm with looplab's
// own Mermaid writer and checks that its edges are exactly the table's: one
// per rule and source state, no more and no fewer. looplab prints its
// current state as the start arrow, and one line per (source, event).
func TestLooplabAgreesWithTable(t *testing.T) {
	d := transitions.Default()
	for _, current := range []states.State{d.Initial(), states.Refreshing} {
		t.Run(current.String(), func(t *testing.T) {
			f := fsm.NewFSM(current.String(), d.FSMEvents(), nil)
			out, err := fsm.VisualizeForMermaidWithGraphType(f, fsm.StateDiagram)
			if err != nil {
				t.Fatal(err)
			}

			var got []edgeKey
			var start string
			sc := bufio.NewScanner(strings.NewReader(out))
			for line := 1; sc.Scan(); line++ {
				text := sc.Text()
				switch {
				case line == 1:
					if text != "stateDiagram-v2" {
						t.Fatalf("looplab's first line is %q, want stateDiagram-v2", text)
					}
				case mermaidStart.MatchString(text):
					start = mermaidStart.FindStringSubmatch(text)[1]
				case mermaidEdge.MatchString(text):
					m := mermaidEdge.FindStringSubmatch(text)
					got = append(got, edgeKey{Event: m[3], From: m[1], To: m[2]})
				default:
					t.Errorf("line %d of looplab's output is not understood: %q", line, text)
				}
			}
			if start != current.String() {
				t.Errorf("looplab's start arrow points to %q, want the current state %q", start, current)
			}
			if diff := cmp.Diff(tableEdges(d), sortedEdges(got)); diff != "" {
				t.Errorf("looplab's edges differ from the table's (-table +looplab):\n%s", diff)
			}
		})
	}
}

// groupMembers expands the diagram's pseudo-nodes into the states they
// stand for: the resting states are those in which no command is in flight.
func groupMembers(node string) []string {
	var out []string
	for _, s := range states.All() {
		switch {
		case node == "any_state", node == "any_resting" && !s.Waiting():
			out = append(out, s.String())
		}
	}
	if out == nil {
		out = []string{node}
	}
	return out
}

// expand turns a diagram arrow into the table edges it stands for. A
// self-loop on a group node means "stays where it was".
func expand(from, to, label string) []edgeKey {
	var out []edgeKey
	for _, f := range groupMembers(from) {
		target := to
		if to == from {
			target = f
		}
		out = append(out, edgeKey{label, f, target})
	}
	return out
}

// drawnEdges is what the diagram should show: every table edge labelled, but
// without the inert rules (stay, no update, no commands).
func drawnEdges(d *transitions.Table) []edgeKey {
	var out []edgeKey
	for _, e := range d.Edges() {
		r := e.Rule
		if r.To == transitions.Stay && r.Update.Apply == nil && len(r.Commands) == 0 {
			continue
		}
		out = append(out, edgeKey{e.Label(), e.From.String(), e.To.String()})
	}
	return sortedEdges(out)
}

func TestMermaid(t *testing.T) {
	d := transitions.Default()
	tests := []struct {
		name      string
		highlight []states.State
	}{
		{"plain", nil},
		{"highlight_one", []states.State{states.Fresh}},
		{"highlight_two", []states.State{states.Refreshing, states.FailedPermanent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := d.Mermaid(tt.highlight...)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if lines[0] != "stateDiagram-v2" {
				t.Errorf("first line %q, want stateDiagram-v2", lines[0])
			}

			var got []edgeKey
			var classes []string
			var starts, ends []string
			for _, l := range lines[1:] {
				switch {
				case mermaidStart.MatchString(l):
					starts = append(starts, mermaidStart.FindStringSubmatch(l)[1])
				case strings.HasSuffix(l, " --> [*]"):
					ends = append(ends, strings.TrimSpace(strings.TrimSuffix(l, " --> [*]")))
				case mermaidEdge.MatchString(l):
					m := mermaidEdge.FindStringSubmatch(l)
					got = append(got, expand(m[1], m[2], m[3])...)
				case strings.HasPrefix(l, "    class "):
					classes = append(classes, l)
				}
			}
			if diff := cmp.Diff([]string{"logged_out"}, starts); diff != "" {
				t.Errorf("start arrows (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"logged_out", "failed_permanent"}, ends); diff != "" {
				t.Errorf("terminal markers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(drawnEdges(d), sortedEdges(got)); diff != "" {
				t.Errorf("diagram arrows differ from the table's non-inert edges "+
					"(-table +diagram):\n%s", diff)
			}

			var want []string
			for _, s := range tt.highlight {
				want = append(want, fmt.Sprintf("    class %s current", s))
			}
			if diff := cmp.Diff(want, classes); diff != "" {
				t.Errorf("highlight classes (-want +got):\n%s", diff)
			}
			if got, want := strings.Contains(out, "classDef current"), len(tt.highlight) > 0; got != want {
				t.Errorf("classDef current present = %v, want %v", got, want)
			}
		})
	}
}

var (
	dotEdge = regexp.MustCompile(`^    (\w+) -> (\w+) \[label=("(?:[^"\\]|\\.)*")\];$`)
	dotNode = regexp.MustCompile(`^    (\w+)( \[.*\])?;$`)
)

func TestDOT(t *testing.T) {
	d := transitions.Default()
	highlight := []states.State{states.Stale, states.ExternalRefresh}
	out := d.DOT(highlight...)

	if !strings.HasPrefix(out, "digraph credfsm {\n") || !strings.HasSuffix(out, "}\n") {
		t.Fatalf("DOT() is not one digraph:\n%s", out)
	}
	if strings.Count(out, "{") != strings.Count(out, "}") {
		t.Errorf("DOT() has unbalanced braces")
	}
	for _, want := range []string{
		"    start -> logged_out;",
		"    logged_out -> end [style=dashed];",
		"    failed_permanent -> end [style=dashed];",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("DOT() lacks the line %q", want)
		}
	}

	var got []edgeKey
	filled := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if m := dotEdge.FindStringSubmatch(l); m != nil {
			label, err := strconv.Unquote(m[3])
			if err != nil {
				t.Fatalf("label in %q: %v", l, err)
			}
			got = append(got, expand(m[1], m[2], label)...)
			continue
		}
		if m := dotNode.FindStringSubmatch(l); m != nil && strings.Contains(m[2], "filled") {
			filled[m[1]] = true
		}
	}
	if diff := cmp.Diff(drawnEdges(d), sortedEdges(got)); diff != "" {
		t.Errorf("DOT arrows differ from the table's non-inert edges (-table +dot):\n%s", diff)
	}
	for _, s := range states.All() {
		if want := slices.Contains(highlight, s); filled[s.String()] != want {
			t.Errorf("state %s filled = %v, want %v", s, filled[s.String()], want)
		}
	}
	if plain := d.DOT(); strings.Contains(plain, "filled") {
		t.Errorf("DOT() without highlight fills a state")
	}
}

func TestText(t *testing.T) {
	d := transitions.Default()
	for _, current := range states.All() {
		t.Run(current.String(), func(t *testing.T) {
			out := d.Text(current)
			for _, s := range states.All() {
				mark := "  "
				if s == current {
					mark = "> "
				}
				if want := fmt.Sprintf("%s%-17s %s\n", mark, s, s.Summary()); !strings.Contains(out, want) {
					t.Errorf("Text(%v) lacks the line %q", current, want)
				}
			}
			_, list, ok := strings.Cut(out, fmt.Sprintf("\nFrom %s:\n", current))
			if !ok {
				t.Fatalf("Text(%v) has no rule list:\n%s", current, out)
			}
			var want []string
			for _, e := range drawnEdges(d) {
				if e.From == current.String() {
					want = append(want, e.Event+" -> "+e.To)
				}
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSuffix(list, "\n"), "\n") {
				label, to, ok := strings.Cut(strings.TrimSpace(l), " -> ")
				if !ok {
					t.Errorf("rule line %q has no target", l)
					continue
				}
				got = append(got, strings.TrimSpace(label)+" -> "+to)
			}
			slices.Sort(want)
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rules listed from %v (-want +got):\n%s", current, diff)
			}
		})
	}
	t.Run("unknown_state", func(t *testing.T) {
		out := d.Text(states.State(99))
		if strings.Contains(out, ">") || strings.Contains(out, "From") {
			t.Errorf("Text of an unknown state marks a state or lists rules:\n%s", out)
		}
	})
}

func TestEdgeLabel(t *testing.T) {
	d := transitions.Default()
	tests := []struct {
		rule, want string
	}{
		{"unauthorized_host", "unauthorized [host-managed] / AskHost"},
		{"refresh_now", "refresh_requested / LockAndReread"},
		{"reread_restricted", "store_reread [restricted] / ReleaseLock, DeleteStores, NotifyObservers"},
		{"token_fresh", "token_requested"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			r, ok := d.Rule(tt.rule)
			if !ok {
				t.Fatalf("no rule %s", tt.rule)
			}
			e := transitions.Edge{From: r.From[0], To: r.Target(r.From[0]), Rule: r}
			if got := e.Label(); got != tt.want {
				t.Errorf("Label() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEdgesOnePerRuleAndSource(t *testing.T) {
	d := transitions.Default()
	want := 0
	for _, r := range d.Rules() {
		want += len(r.From)
	}
	edges := d.Edges()
	if len(edges) != want {
		t.Errorf("Edges() has %d edges, want %d (one per rule and source state)", len(edges), want)
	}
	for _, e := range edges {
		if !slices.Contains(e.Rule.From, e.From) || e.To != e.Rule.Target(e.From) {
			t.Errorf("edge %s: %v -> %v does not follow its rule", e.Rule.ID, e.From, e.To)
		}
	}
}
