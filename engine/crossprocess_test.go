package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/oauth/oauthtest"
	"github.com/credfsm/credfsm/states"
)

// The environment of a child process run by TestCrossProcessCoalescing.
const (
	helperRole     = "CREDFSM_ENGINE_HELPER"           // "unauthorized" in a child
	helperHome     = "CREDFSM_ENGINE_HELPER_HOME"      // the shared Codex home
	helperBarrier  = "CREDFSM_ENGINE_HELPER_BARRIER"   // where ready and go files meet
	helperTokenURL = "CREDFSM_ENGINE_HELPER_TOKEN_URL" // the parent's token server
	helperIndex    = "CREDFSM_ENGINE_HELPER_INDEX"
)

// goFile is created by the parent once every child is ready.
const goFile = "go"

// TestCrossProcessCoalescing: several processes share one Codex home and
// one token server. Their stored access token has expired, and the API
// refuses it to all of them at once. Each one's manager locks the store and
// re-reads it before redeeming: the first redeems the refresh token, the
// others find the rotated tokens and adopt them. The server, which refuses a
// reused refresh token as a real provider does, sees exactly one redemption
// and no reuse, and every process ends up with the same new token.
func TestCrossProcessCoalescing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	const children = 8
	noLeaks(t)

	// Tokens issued two hours ago have expired an hour ago.
	var offset atomic.Int64
	offset.Store(int64(-2 * time.Hour))
	srv := oauthtest.NewServer(oauthtest.WithClock(func() time.Time {
		return time.Now().Add(time.Duration(offset.Load()))
	}))
	defer srv.Close()
	ts := srv.Issue(mainAccount)
	offset.Store(0)
	home, barrier := t.TempDir(), t.TempDir()
	writeAuthFile(t, home, ts, time.Now().Add(-2*time.Hour))

	began := time.Now()
	type child struct {
		cmd            *exec.Cmd
		stdout, stderr bytes.Buffer
	}
	kids := make([]*child, children)
	for i := range kids {
		c := &child{cmd: exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1",
			"-test.timeout=60s")}
		c.cmd.Env = append(os.Environ(),
			helperRole+"=unauthorized",
			helperHome+"="+home,
			helperBarrier+"="+barrier,
			helperTokenURL+"="+srv.TokenURL,
			helperIndex+"="+strconv.Itoa(i),
			// Under -race, a process otherwise sleeps a second on exit.
			"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"),
		)
		c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
		if err := c.cmd.Start(); err != nil {
			t.Fatalf("starting child %d: %v", i, err)
		}
		kids[i] = c
	}
	defer func() {
		for _, c := range kids {
			if c.cmd.ProcessState == nil {
				c.cmd.Process.Kill()
				c.cmd.Wait()
			}
		}
	}()

	// Start barrier: every child has loaded the credential and waits for
	// the go file; then they all report the 401 at once.
	eventually(t, "every child is ready", func() bool {
		ready, _ := filepath.Glob(filepath.Join(barrier, "ready-*"))
		return len(ready) == children
	})
	ready := time.Now()
	if err := os.WriteFile(filepath.Join(barrier, goFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	fingerprints := map[string]int{}
	outcomes := map[string]int{}
	for i, c := range kids {
		err := c.cmd.Wait()
		if err != nil {
			t.Errorf("child %d: %v\nstdout:\n%s\nstderr:\n%s", i, err, c.stdout.String(), c.stderr.String())
			continue
		}
		fp, outcome, ok := parseResult(c.stdout.String())
		if !ok {
			t.Errorf("child %d printed no result:\n%s", i, c.stdout.String())
			continue
		}
		fingerprints[fp]++
		outcomes[outcome]++
	}
	t.Logf("%d processes: ready after %v, done %v after the start signal",
		children, ready.Sub(began), time.Since(ready))
	if t.Failed() {
		return
	}

	st := srv.Stats()
	if st.Redemptions != 1 || st.ReuseAttempts != 0 || st.Requests != 1 {
		t.Errorf("server stats %+v, want exactly one request, one redemption, no reuse", st)
	}
	stored, ok := readAuthFile(t, home)
	if !ok || stored.Tokens == nil {
		t.Fatal("auth.json is gone")
	}
	want := fingerprint(stored.Tokens.AccessToken)
	if len(fingerprints) != 1 || fingerprints[want] != children {
		t.Errorf("children retried with tokens %v, want all %d with the stored token %s",
			fingerprints, children, want)
	}
	if outcomes["redeemed"] != 1 || outcomes["adopted"] != children-1 {
		t.Errorf("outcomes %v, want one redeemed and %d adopted", outcomes, children-1)
	}
	if stored.Tokens.RefreshToken == ts.RefreshToken {
		t.Error("auth.json still holds the redeemed refresh token")
	}
}

// parseResult finds the line a child prints last.
func parseResult(out string) (fp, outcome string, ok bool) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "RESULT" {
			fp, outcome, ok = f[1], f[2], true
		}
	}
	return fp, outcome, ok
}

// TestHelperProcess is the child of TestCrossProcessCoalescing; run by
// itself it does nothing.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperRole) != "unauthorized" {
		return
	}
	if err := unauthorizedChild(t); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
}

// unauthorizedChild loads the shared credential, waits for the start
// signal, reports a 401 for the stored access token and prints which token
// it was told to retry with (as a fingerprint) and whether it redeemed the
// refresh token itself or adopted another process's result.
func unauthorizedChild(t *testing.T) error {
	home, barrier := os.Getenv(helperHome), os.Getenv(helperBarrier)
	ctx := context.Background()

	doc, ok := readAuthFile(t, home)
	if !ok || doc.Tokens == nil {
		return fmt.Errorf("no tokens in %s", home)
	}
	refused := doc.Tokens.AccessToken
	profile := oauth.CodexProfile()
	profile.TokenURL, profile.URLEnv = os.Getenv(helperTokenURL), ""
	m, err := engine.New(ctx, engine.Config{Home: home, Profile: &profile,
		LockTimeout: 20 * time.Second})
	if err != nil {
		return err
	}
	defer m.Close()
	if s := m.Snapshot(); s.State != states.Stale {
		return fmt.Errorf("loaded state %s, want stale (expired tokens)", s.State)
	}
	var redeemed, adopted atomic.Bool
	m.Subscribe(func(tr engine.Transition) {
		switch tr.Rule {
		case "refresh_succeeded":
			redeemed.Store(true)
		case "reread_adopt_fresh":
			adopted.Store(true)
		}
	})

	readyFile := filepath.Join(barrier, "ready-"+os.Getenv(helperIndex))
	if err := os.WriteFile(readyFile, nil, 0o600); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(barrier, goFile)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no start signal")
		}
		time.Sleep(500 * time.Microsecond)
	}

	d := m.Observe(ctx, refused, http.StatusUnauthorized, nil)
	if d.Action != engine.Retry {
		return fmt.Errorf("401: %v: %v", d.Action, d.Err)
	}
	tok, err := m.Token(ctx)
	if err != nil || tok != d.Token {
		return fmt.Errorf("Token after recovery: %s, %v; want the retry token", fingerprint(tok), err)
	}
	m.Close() // delivers the transitions still queued

	outcome := "unknown"
	switch {
	case redeemed.Load() && !adopted.Load():
		outcome = "redeemed"
	case adopted.Load() && !redeemed.Load():
		outcome = "adopted"
	}
	fmt.Printf("RESULT %s %s\n", fingerprint(d.Token), outcome)
	return nil
}
