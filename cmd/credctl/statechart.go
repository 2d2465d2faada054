package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/credfsm/credfsm/states"
	"github.com/credfsm/credfsm/transitions"
)

const statechartLong = `Print the statechart: every state a credential can be in and every rule
that moves it, generated from the transitions table that credfsm runs (the
same table docs/statechart.md is generated from).

Formats:
  text     states with their meaning, and the rules out of each state
           (with --highlight, only the rules out of that state)
  mermaid  a Mermaid stateDiagram-v2, for Markdown renderers
  dot      a Graphviz digraph: credctl statechart --format dot | dot -Tsvg

--highlight marks one state: a state name, or "current" for the state of the
stored credential (read as "credctl status" reads it, changing nothing).`

const statechartExample = `  credctl statechart
  credctl statechart --highlight current
  credctl statechart --format mermaid --highlight stale > chart.mmd
  credctl statechart --format dot | dot -Tsvg > chart.svg`

func (a *app) statechartCommand() *cobra.Command {
	var format, highlight string
	cmd := &cobra.Command{
		Use:     "statechart",
		Short:   "Print the state machine as text, Mermaid or Graphviz DOT",
		Long:    statechartLong,
		Example: statechartExample,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "mermaid" && format != "dot" {
				return badInput("unknown --format %q (want text, mermaid or dot)", format)
			}
			var marked []states.State
			switch highlight {
			case "":
			case "current":
				s, err := a.open(cmd.Context(), 0)
				if err != nil {
					return err
				}
				marked = append(marked, s.m.Snapshot().State)
				s.m.Close()
			default:
				st, err := states.ParseState(highlight)
				if err != nil {
					return badInput("unknown state %q for --highlight (want %s, or current)",
						highlight, stateNames())
				}
				marked = append(marked, st)
			}

			t := transitions.Default()
			switch format {
			case "mermaid":
				fmt.Fprint(a.stdout, t.Mermaid(marked...))
			case "dot":
				fmt.Fprint(a.stdout, t.DOT(marked...))
			default:
				if len(marked) == 1 {
					fmt.Fprint(a.stdout, t.Text(marked[0]))
				} else {
					fmt.Fprint(a.stdout, t.FullText())
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "text, mermaid or dot")
	cmd.Flags().StringVar(&highlight, "highlight", "", `a state to mark, or "current"`)
	return cmd
}

func stateNames() string {
	var names []string
	for _, s := range states.All() {
		names = append(names, s.String())
	}
	return strings.Join(names, ", ")
}
