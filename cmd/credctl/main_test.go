package main

import (
	"errors"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/zalando/go-keyring"
)

// TestMain lets the test binary stand in for the credctl binary: when a
// script runs "credctl", testscript runs this binary under that name and
// credctlMain takes over.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"credctl": credctlMain})
}

// credctlMain is credctl's main, with the OS keyring replaced by memory so
// that no test reaches a real keyring. CREDCTL_TEST_KEYRING=broken makes
// every keyring call fail instead, as on a machine without one.
func credctlMain() {
	if os.Getenv("CREDCTL_TEST_KEYRING") == "broken" {
		keyring.MockInitWithError(errors.New("no keyring on this test machine"))
	} else {
		keyring.MockInit()
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// TestScripts runs the end-to-end scripts in testdata/script against the
// real binary, loopback token servers and temporary homes.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		Setup:               setupScript,
		Cmds:                scriptCommands,
		RequireExplicitExec: false,
	})
}
