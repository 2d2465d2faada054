package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
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
		"== Act 4. Nearly an hour passes", "fresh -> stale  [woke_turned_stale]",
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
	if strings.Contains(got, "memory cli|") {
		t.Error("the demo names the in-memory store by its key")
	}
	checkDemoClock(t, got)
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

// demoOffset matches a transition line of the demo and captures its clock
// reading.
var demoOffset = regexp.MustCompile(`(?m)^   \+(\S+) +\S+ +\S+ -> `)

// checkDemoClock: where the story says how much time passes, the clock
// printed with the transitions agrees. Act 4 says how far in the story
// is; act 8 how long after the previous transition its tokens go stale.
func checkDemoClock(t *testing.T, out string) {
	t.Helper()
	act4, act8 := demoAct(out, 4), demoAct(out, 8)

	in := regexp.MustCompile(`(\d+) minutes (?:on|in)`).FindStringSubmatch(act4)
	if in == nil {
		t.Errorf("act 4 does not say how many minutes pass:\n%s", act4)
	} else if at := firstOffset(t, act4); at != mustMinutes(t, in[1]) {
		t.Errorf("act 4 says %s minutes pass, but its clock shows +%v", in[1], at)
	}

	later := regexp.MustCompile(`(\d+) minutes later`).FindStringSubmatch(act8)
	if later == nil {
		t.Errorf("act 8 does not say how many minutes later its tokens go stale:\n%s", act8)
		return
	}
	prev := demoOffset.FindAllStringSubmatch(demoAct(out, 7), -1)
	if len(prev) == 0 {
		t.Fatalf("act 7 shows no transition")
	}
	last := parseSpan(t, prev[len(prev)-1][1])
	if d := firstOffset(t, act8) - last; d != mustMinutes(t, later[1]) {
		t.Errorf("act 8 says %s minutes later, but its clock moved %v", later[1], d)
	}
}

// demoAct returns the text of one act of the demo's output.
func demoAct(out string, n int) string {
	_, rest, _ := strings.Cut(out, "== Act "+strconv.Itoa(n)+".")
	act, _, _ := strings.Cut(rest, "\n== Act ")
	return act
}

func firstOffset(t *testing.T, act string) time.Duration {
	t.Helper()
	m := demoOffset.FindStringSubmatch(act)
	if m == nil {
		t.Fatalf("no transition in:\n%s", act)
	}
	return parseSpan(t, m[1])
}

func parseSpan(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("clock reading %q: %v", s, err)
	}
	return d
}

func mustMinutes(t *testing.T, s string) time.Duration {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(n) * time.Minute
}
