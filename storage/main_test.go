package storage

import (
	"fmt"
	"os"
	"testing"

	"github.com/zalando/go-keyring"
)

// helperEnv names the role a re-executed test binary plays (see
// helperRoles); homeEnv the home directory it works on.
const (
	helperEnv = "CREDFSM_STORAGE_HELPER"
	homeEnv   = "CREDFSM_STORAGE_HELPER_HOME"
)

// helperRoles are the child processes the multi-process tests start by
// re-executing the test binary. Each returns an exit code.
var helperRoles = map[string]func(home string) int{}

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		run, ok := helperRoles[role]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown helper role %q\n", role)
			os.Exit(2)
		}
		os.Exit(run(os.Getenv(homeEnv)))
	}
	// No test may reach the real OS keyring, whatever it configures.
	keyring.MockInit()
	os.Exit(m.Run())
}
