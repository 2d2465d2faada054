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
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
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

	out := &checkedWriter{w: stdout}
	app := &app{stdin: stdin, stdout: out, stderr: stderr, getenv: getenv}
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(out)
	root.SetErr(stderr)

	err := root.ExecuteContext(ctx)
	if f := out.failure(); f != nil && (err == nil || errors.Is(err, f.err)) {
		err = f // the command failed, or would have, for want of its output
	}
	if err == nil {
		return exitOK
	}
	code, line := describe(err)
	writeLine(stderr, "credctl: "+line)
	return code
}

// checkedWriter is stdout, remembering the first write that failed. A
// command whose output did not arrive (a full disk, a closed pipe) has not
// done what it was asked: "credctl token >file" must not exit 0 with the
// file empty.
type checkedWriter struct {
	w   io.Writer
	mu  sync.Mutex
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	return n, err
}

// failure is the error to exit with if a write failed, else nil; its err
// is the failed write's.
func (c *checkedWriter) failure() *cliError {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return nil
	}
	return &cliError{code: exitError, err: c.err,
		msg: fmt.Sprintf("cannot write to standard output (%v); whatever the command "+
			"changed (a login, a logout, a refresh) was done, only its report is lost", c.err)}
}
