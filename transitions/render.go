package transitions

import (
	"fmt"
	"slices"
	"strings"

	"github.com/credfsm/credfsm/states"
)

// Edge is one arrow of the statechart: a rule seen from one of its source
// states.
type Edge struct {
	From, To states.State
	Rule     Rule
}

// Label renders the edge as "event [guard] / Command, Command".
func (e Edge) Label() string { return label(e.Rule) }

func label(r Rule) string {
	var b strings.Builder
	b.WriteString(r.On.String())
	if r.Guard.Name != "" {
		fmt.Fprintf(&b, " [%s]", r.Guard.Name)
	}
	if len(r.Commands) > 0 {
		b.WriteString(" / ")
		for i, k := range r.Commands {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k.String())
		}
	}
	return b.String()
}

// Inert reports whether the rule only absorbs its event: it stays put,
// changes nothing and runs nothing. Such rules are listed in the rule table
// but left out of diagrams, where they would only add self-loops.
func (r Rule) Inert() bool {
	return r.To == Stay && r.Update.Apply == nil && len(r.Commands) == 0
}

// Edges returns every arrow the table defines, in table order: one per rule
// and source state, self-loops included. It is the table seen as a graph,
// which is what looplab/fsm is compiled into.
func (t *Table) Edges() []Edge {
	var out []Edge
	for _, r := range cloneRules(t.rules) {
		for _, s := range r.From {
			out = append(out, Edge{From: s, To: r.Target(s), Rule: r})
		}
	}
	return out
}

// Pseudo-nodes of the diagram: a rule that applies in every resting state
// (or in every state) is drawn once, from a node standing for the group,
// instead of once per state. Its self-loop means "stays where it was".
var groups = []struct {
	id, label string
	members   []states.State
}{
	{"any_state", "any state", everyState},
	{"any_resting", "any resting state", resting},
}

// arrow is one line of the diagram.
type arrow struct{ from, to, label string }

// arrows returns the diagram's lines: inert rules left out, group rules
// drawn from their pseudo-node.
func (t *Table) arrows() (out []arrow, usedGroups []int) {
	used := map[int]bool{}
	for _, r := range t.rules {
		if r.Inert() {
			continue
		}
		if g := groupOf(r.From); g >= 0 {
			to := groups[g].id
			if r.To != Stay {
				to = r.To.String()
			}
			out = append(out, arrow{groups[g].id, to, label(r)})
			used[g] = true
			continue
		}
		for _, s := range r.From {
			out = append(out, arrow{s.String(), r.Target(s).String(), label(r)})
		}
	}
	for g := range groups {
		if used[g] {
			usedGroups = append(usedGroups, g)
		}
	}
	return out, usedGroups
}

func groupOf(from []states.State) int {
	for i, g := range groups {
		if slices.Equal(from, g.members) {
			return i
		}
	}
	return -1
}

// Mermaid renders the table as a Mermaid stateDiagram-v2: the declared initial
// state, every edge labelled with its rule, terminal markers, and the
// highlighted states, if any, styled as current.
func (t *Table) Mermaid(highlight ...states.State) string {
	arrows, used := t.arrows()
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	for _, g := range used {
		fmt.Fprintf(&b, "    state \"%s\" as %s\n", groups[g].label, groups[g].id)
	}
	fmt.Fprintf(&b, "    [*] --> %s\n", t.initial)
	for _, a := range arrows {
		fmt.Fprintf(&b, "    %s --> %s: %s\n", a.from, a.to, a.label)
	}
	for _, s := range states.All() {
		if s.Terminal() {
			fmt.Fprintf(&b, "    %s --> [*]\n", s)
		}
	}
	if len(highlight) > 0 {
		b.WriteString("    classDef current fill:#ffd54f,stroke:#e65100,stroke-width:3px\n")
		for _, s := range highlight {
			fmt.Fprintf(&b, "    class %s current\n", s)
		}
	}
	return b.String()
}

// DOT renders the table as a Graphviz digraph, with the same arrows as
// Mermaid and the highlighted states filled.
func (t *Table) DOT(highlight ...states.State) string {
	arrows, used := t.arrows()
	var b strings.Builder
	b.WriteString("digraph credfsm {\n")
	b.WriteString("    rankdir=LR;\n")
	b.WriteString("    node [shape=box, style=rounded, fontname=\"Helvetica\"];\n")
	b.WriteString("    edge [fontname=\"Helvetica\", fontsize=10];\n")
	b.WriteString("    start [shape=point, label=\"\"];\n")
	b.WriteString("    end [shape=doublecircle, label=\"\", width=0.15];\n")
	for _, g := range used {
		fmt.Fprintf(&b, "    %s [label=%q, style=dashed];\n", groups[g].id, groups[g].label)
	}
	for _, s := range states.All() {
		attrs := ""
		if slices.Contains(highlight, s) {
			attrs = ` [style="rounded,filled,bold", fillcolor="#ffd54f", color="#e65100"]`
		}
		fmt.Fprintf(&b, "    %s%s;\n", s, attrs)
	}
	fmt.Fprintf(&b, "    start -> %s;\n", t.initial)
	for _, a := range arrows {
		fmt.Fprintf(&b, "    %s -> %s [label=%q];\n", a.from, a.to, a.label)
	}
	for _, s := range states.All() {
		if s.Terminal() {
			fmt.Fprintf(&b, "    %s -> end [style=dashed];\n", s)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// Text renders a compact view for terminals: every state, the current one
// marked, and the rules that can fire from it.
func (t *Table) Text(current states.State) string {
	var b strings.Builder
	for _, s := range states.All() {
		mark := "  "
		if s == current {
			mark = "> "
		}
		fmt.Fprintf(&b, "%s%-17s %s\n", mark, s, s.Summary())
	}
	if !current.Valid() {
		return b.String()
	}
	fmt.Fprintf(&b, "\nFrom %s:\n", current)
	for _, r := range t.rules {
		if !r.from(current) || r.Inert() {
			continue
		}
		fmt.Fprintf(&b, "  %-42s -> %s\n", label(r), r.Target(current))
	}
	return b.String()
}

// FullText renders every state with its summary and, under each, the rules
// that can fire from it (inert ones left out): the whole table for a
// terminal.
func (t *Table) FullText() string {
	var b strings.Builder
	for _, s := range states.All() {
		term := ""
		if s.Terminal() {
			term = " (terminal)"
		}
		fmt.Fprintf(&b, "%-17s %s%s\n", s, s.Summary(), term)
	}
	for _, s := range states.All() {
		fmt.Fprintf(&b, "\nFrom %s:\n", s)
		for _, r := range t.rules {
			if r.from(s) && !r.Inert() {
				fmt.Fprintf(&b, "  %-42s -> %s\n", label(r), r.Target(s))
			}
		}
	}
	return b.String()
}

// Markdown renders the document kept in docs/statechart.md: the diagram and,
// under it, every rule with its guard, update and commands.
func (t *Table) Markdown() string {
	var b strings.Builder
	b.WriteString("<!-- Generated from the transitions table by `go generate ./...`; do not edit. -->\n\n")
	b.WriteString("# The credential statechart\n\n")
	b.WriteString("Every state a credential can be in, and every rule that moves it. ")
	b.WriteString("An edge reads `event [guard] / commands`: on that event, if the guard ")
	b.WriteString("passes, the machine follows the edge and emits those commands, in order. ")
	b.WriteString("For one state and event the first rule whose guard passes wins. ")
	b.WriteString("Rules that only absorb an event (stay, change nothing, run nothing) ")
	b.WriteString("appear in the rule table but not in the diagram. A rule that applies in ")
	b.WriteString("every resting state (or every state) is drawn once, from a node standing ")
	b.WriteString("for that group; its self-loop means the machine stays where it was. ")
	b.WriteString("The resting states are those in which no command is in flight: ")
	b.WriteString("every state but `refreshing` and `external_refresh`.\n\n")
	b.WriteString("```mermaid\n")
	b.WriteString(t.Mermaid())
	b.WriteString("```\n\n")

	b.WriteString("## States\n\n")
	b.WriteString("| State | Terminal | Meaning |\n|---|---|---|\n")
	for _, s := range states.All() {
		term := "no"
		if s.Terminal() {
			term = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", s, term, s.Summary())
	}

	fmt.Fprintf(&b, "\n## Rules (%d)\n\n", len(t.rules))
	b.WriteString("| # | Rule | From | Event | Guard | To | Update | Commands |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for i, r := range t.rules {
		to := "(stay)"
		if r.To != Stay {
			to = "`" + r.To.String() + "`"
		}
		guard := r.Guard.Name
		if guard == "" {
			guard = "(otherwise)"
		}
		var cmds []string
		for _, k := range r.Commands {
			cmds = append(cmds, k.String())
		}
		fmt.Fprintf(&b, "| %d | `%s` | %s | `%s` | %s | %s | %s | %s |\n",
			i+1, r.ID, codeList(stateNames(r.From)), r.On, guard, to, r.Update.Name,
			strings.Join(cmds, ", "))
	}
	return b.String()
}

func codeList(names []string) string {
	for _, g := range groups {
		if slices.Equal(names, stateNames(g.members)) {
			return g.label
		}
	}
	return "`" + strings.Join(names, "`, `") + "`"
}
