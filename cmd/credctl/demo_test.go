package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the demo as "go run ./cmd/credctl demo" does: it tells
// every act, shows the transitions that make each one, prints no token, and
// removes its temporary home. A deadline keeps a stuck story from hanging
// the suite; the demo itself waits at most demoWait for any transition.
func TestDemo(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var out bytes.Buffer
	start := time.Now()
	if err := runDemo(ctx, &out, nil); err != nil {
		t.Fatalf("demo: %v\noutput so far:\n%s", err, out.String())
	}
	t.Logf("the demo took %v", time.Since(start))
	got := out.String()

	for _, want := range []string{
		"== Act 1. A machine with nothing stored",
		"[load_nothing]", "[token_logged_out]",
		"== Act 2. Sign in", "[login_fresh]  then PersistRecord, WakeAt", "mode 0600",
		"== Act 3. Use it", "GET /v1/models with token",
		"== Act 4. An hour passes", "fresh -> stale  [woke_turned_stale]",
		"== Act 5. Refresh, with rotation", "[reread_unchanged]  then RedeemRefreshToken",
		"refreshing -> fresh  [persisted_refresh]", "token server redemptions: 1",
		"== Act 6. The API answers 401", "fresh -> refreshing  [unauthorized_refresh]",
		"[unauthorized_old_generation]", "token server redemptions still 2",
		"== Act 7. The token server has a bad moment", "refreshing -> stale  [refresh_failed]",
		"[token_backing_off]", "is still served during the backoff",
		"== Act 8. A copy of auth.json is used elsewhere",
		"refreshing -> failed_permanent  [refresh_rejected]",
		`"credctl token" would exit 3: the refresh token was already used`,
		"asking again costs nothing",
		"== Act 9. Sign out", "failed_permanent -> logged_out  [logout]",
		"removed: file $CODEX_HOME/auth.json",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the demo does not say %q", want)
		}
	}
	if strings.Contains(got, "eyJ") {
		t.Error("the demo printed something that looks like a JWT")
	}
	if t.Failed() {
		t.Logf("output:\n%s", got)
	}

	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("the demo left %d entries in the temporary directory, e.g. %s", len(left),
			left[0].Name())
	}
}
