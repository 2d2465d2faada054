// Command statechart writes docs/statechart.md from the transitions table.
// It runs through `go generate ./...`; a test fails when the file is stale.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/credfsm/credfsm/transitions"
)

func main() {
	out := flag.String("o", "", "file to write (default: standard output)")
	flag.Parse()

	doc := transitions.Default().Markdown()
	if *out == "" {
		fmt.Print(doc)
		return
	}
	if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "statechart:", err)
		os.Exit(1)
	}
}
