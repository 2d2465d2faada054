// Command credctl is the command line of credfsm: it hands out a working
// bearer token for a Codex (or other OAuth) login, refreshing it when needed,
// and says clearly when a person must sign in again.
//
// It reads and writes the OpenAI Codex CLI's credential store (auth.json in
// the Codex home, or the OS keyring), so credctl and Codex share one login.
// Run "credctl --help" for the commands and exit codes, or "credctl demo" for
// a tour that needs no login at all.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// run executes one credctl command line and returns its exit code. It is
// main without the process: tests call it directly.
//
// Invariant: whatever fails, at most one line goes to stderr (plus debug logs
// with -v), and no secret is part of it.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	app := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)

	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code, line := describe(err)
	writeLine(stderr, "credctl: "+line)
	return code
}
