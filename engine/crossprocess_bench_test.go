package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth"
	"github.com/credfsm/credfsm/states"
)

// The environment of a child process run by BenchmarkCrossProcessStorm.
const (
	stormRole     = "CREDFSM_STORM_CHILD"     // "credfsm" or "naive" in a child
	stormHome     = "CREDFSM_STORM_HOME"      // the shared Codex home
	stormTokenURL = "CREDFSM_STORM_TOKEN_URL" // the parent's token server
)

// BenchmarkCrossProcessStorm: p processes share one Codex home (the file
// store) whose access token has expired, and each gets a 401 for it at the
// same moment. An iteration is one storm: from the start signal until the
// last process has reported its new token. Preparing a storm (writing
// expired tokens to auth.json and having every process load them) is
// outside the timer.
//
// The processes are this test binary run again as TestCrossProcessStormChild,
// started once for all the storms of a run, as long-lived processes sharing
// a login are. The parent drives them with lines on their stdin ("load",
// "go") and reads their answers on stdout. A pipe wakes a process at once,
// where polling for a file would add its interval to the time measured.
//
// impl=credfsm reports the 401 to Manager.Observe, after Manager.Reload has
// picked up the expired tokens. The token server must see exactly one
// redemption and no reuse per storm, and every process must end with the
// token auth.json holds, else the benchmark fails.
//
// impl=naive is the baseline: each process redeems the refresh token it read
// from auth.json with oauth.Client.Redeem, as code without a store lock
// does. Its redemptions and reuse failures are reported, not asserted.
func BenchmarkCrossProcessStorm(b *testing.B) {
	for _, impl := range []string{"credfsm", "naive"} {
		for _, p := range []int{2, 4, 8} {
			b.Run("impl="+impl+"/processes="+strconv.Itoa(p), func(b *testing.B) {
				benchCrossProcessStorm(b, impl, p)
			})
		}
	}
}

// stormChild is one process of a storm, seen from the parent.
type stormChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr bytes.Buffer
}

// send writes one command line to the child.
func (c *stormChild) send(b *testing.B, cmd string) {
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		b.Fatalf("child: %v\nstderr:\n%s", err, c.stderr.String())
	}
}

// line reads the next line the child prints with the given prefix, skipping
// anything else (the test framework's own output).
func (c *stormChild) line(b *testing.B, prefix string) string {
	for {
		l, err := c.stdout.ReadString('\n')
		if err != nil {
			b.Fatalf("child exited before %s: %v\nstderr:\n%s", prefix, err, c.stderr.String())
		}
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
			return strings.TrimSpace(rest)
		}
	}
}

func benchCrossProcessStorm(b *testing.B, impl string, procs int) {
	iss := newExpiredIssuer(b)
	home := b.TempDir()
	writeAuthFile(b, home, iss.issue(), time.Now().Add(-2*time.Hour))
	kids := make([]*stormChild, procs)
	for i := range kids {
		kids[i] = startStormChild(b, impl, home, iss.srv.TokenURL)
	}
	stats := stormStats{before: iss.srv.Stats()}
	answers := make([]string, procs)
	unrecovered := 0

	b.StopTimer()
	for range b.N {
		ts := iss.issue()
		writeAuthFile(b, home, ts, ts.AccessExpiry.Add(-time.Hour))
		for _, c := range kids {
			c.send(b, "load")
		}
		for _, c := range kids {
			c.line(b, "READY")
		}
		redeemed := iss.srv.Stats().Redemptions

		b.StartTimer()
		for _, c := range kids {
			c.send(b, "go")
		}
		for i, c := range kids {
			answers[i] = c.line(b, "RESULT")
		}
		b.StopTimer()

		if impl == "naive" {
			for _, a := range answers {
				if strings.HasPrefix(a, "failed") {
					unrecovered++
				}
			}
			continue
		}
		if got := iss.srv.Stats().Redemptions - redeemed; got != 1 {
			b.Fatalf("a storm of %d processes made %d redemptions, want 1", procs, got)
		}
		stored, ok := readAuthFile(b, home)
		if !ok || stored.Tokens == nil {
			b.Fatal("auth.json holds no tokens after the storm")
		}
		want := "token " + fingerprint(stored.Tokens.AccessToken)
		for i, a := range answers {
			if a != want {
				b.Fatalf("child %d answered %q, want %q (the token auth.json holds)", i, a, want)
			}
		}
	}
	stats.report(b, iss.srv, b.N, unrecovered)
	if st := iss.srv.Stats(); impl == "credfsm" && st.ReuseAttempts != stats.before.ReuseAttempts {
		b.Fatalf("the token server saw %d reuse attempts, want none",
			st.ReuseAttempts-stats.before.ReuseAttempts)
	}

	for i, c := range kids {
		c.stdin.Close()
		if err := c.cmd.Wait(); err != nil {
			b.Fatalf("child %d: %v\nstderr:\n%s", i, err, c.stderr.String())
		}
	}
}

// startStormChild starts one process of a storm. Closing its stdin ends
// it; if the benchmark fails first, it is killed.
func startStormChild(b *testing.B, impl, home, tokenURL string) *stormChild {
	b.Helper()
	c := &stormChild{cmd: exec.Command(os.Args[0], "-test.run=^TestCrossProcessStormChild$",
		"-test.count=1", "-test.timeout=10m")}
	c.cmd.Env = append(os.Environ(),
		stormRole+"="+impl,
		stormHome+"="+home,
		stormTokenURL+"="+tokenURL,
		// Under -race, a process otherwise sleeps a second on exit.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"),
	)
	c.cmd.Stderr = &c.stderr
	stdin, err := c.cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	c.stdin, c.stdout = stdin, bufio.NewReader(stdout)
	if err := c.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return c
}

// TestCrossProcessStormChild is a process of BenchmarkCrossProcessStorm; run
// by itself it does nothing.
func TestCrossProcessStormChild(t *testing.T) {
	role := os.Getenv(stormRole)
	if role == "" {
		return
	}
	if err := stormChildRun(t, role); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
}

// stormChildRun answers the parent's commands until its stdin closes:
//
//	load  read auth.json (a credfsm process reloads its manager), then
//	      print READY;
//	go    recover from a 401 for the access token read at load, then print
//	      RESULT token <fingerprint> with the token to retry with, or, for
//	      the naive baseline, RESULT failed <reason> when its redemption
//	      was refused.
func stormChildRun(t *testing.T, role string) error {
	ctx := context.Background()
	home := os.Getenv(stormHome)
	profile := oauth.CodexProfile()
	profile.TokenURL, profile.URLEnv = os.Getenv(stormTokenURL), ""

	var load func() error
	var onUnauthorized func() (string, error)
	var refused authTokens
	readRefused := func() error {
		doc, ok := readAuthFile(t, home)
		if !ok || doc.Tokens == nil {
			return fmt.Errorf("no tokens in %s", home)
		}
		refused = *doc.Tokens
		return nil
	}
	switch role {
	case "credfsm":
		m, err := engine.New(ctx, engine.Config{Home: home, Profile: &profile,
			LockTimeout: 30 * time.Second})
		if err != nil {
			return err
		}
		defer m.Close()
		load = func() error {
			if err := readRefused(); err != nil {
				return err
			}
			if err := m.Reload(ctx); err != nil {
				return err
			}
			if s := m.Snapshot(); s.State != states.Stale {
				return fmt.Errorf("loaded state %s, want stale (expired tokens)", s.State)
			}
			return nil
		}
		onUnauthorized = func() (string, error) {
			d := m.Observe(ctx, refused.AccessToken, http.StatusUnauthorized, nil)
			if d.Action != engine.Retry {
				return "", fmt.Errorf("401: %v: %v", d.Action, d.Err)
			}
			return "token " + fingerprint(d.Token), nil
		}
	case "naive":
		client, err := oauth.NewClient(profile)
		if err != nil {
			return err
		}
		load = readRefused
		onUnauthorized = func() (string, error) {
			g, err := client.Redeem(ctx, states.NewSecret(refused.RefreshToken))
			if err != nil {
				var re *states.RefreshError
				if errors.As(err, &re) && re.Permanent {
					return "failed " + re.Reason.String(), nil
				}
				return "", err
			}
			return "token " + fingerprint(g.AccessToken.Reveal()), nil
		}
	default:
		return fmt.Errorf("unknown role %q", role)
	}

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch cmd := in.Text(); cmd {
		case "load":
			if err := load(); err != nil {
				return err
			}
			fmt.Println("READY")
		case "go":
			answer, err := onUnauthorized()
			if err != nil {
				return err
			}
			fmt.Println("RESULT", answer)
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
	}
	return in.Err()
}
