package storage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/credfsm/credfsm/states"
)

// The tests in this file start copies of the test binary as separate
// processes (TestMain runs the role named in helperEnv instead of the
// tests), because what they check — atomic replacement under SIGKILL, the
// lock file, compare-and-swap between writers — only means something across
// processes.

// helperIDEnv tells a helper which record is its own.
const helperIDEnv = "CREDFSM_STORAGE_HELPER_ID"

func init() {
	helperRoles["crash-writer"] = crashWriter
	helperRoles["cas"] = casWriter
	helperRoles["cas-reread"] = casRereader
	helperRoles["hold-lock"] = lockHolder
}

// child is a running helper process, spoken to line by line.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *bytes.Buffer
}

// startHelper runs the test binary as a helper in role on home.
func startHelper(t *testing.T, role, home string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, homeEnv+"="+home)
	cmd.Env = append(cmd.Env, env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 16), stderr: &bytes.Buffer{}}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return c
}

// next returns the child's next line, or an error after 10 s or at exit.
func (c *child) next() (string, error) {
	select {
	case line, ok := <-c.lines:
		if !ok {
			return "", fmt.Errorf("helper exited; stderr: %s", c.stderr)
		}
		return line, nil
	case <-time.After(10 * time.Second):
		return "", errors.New("helper said nothing for 10 s")
	}
}

// expect returns the rest of the child's next line, which must start with
// prefix.
func (c *child) expect(t *testing.T, prefix string) string {
	t.Helper()
	line, err := c.next()
	if err != nil {
		t.Fatal(err)
	}
	rest, ok := strings.CutPrefix(line, prefix)
	if !ok {
		t.Fatalf("helper said %q, want %q…", line, prefix)
	}
	return rest
}

func (c *child) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// waitStdin blocks a helper until the parent sends a line.
func waitStdin() {
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}

// helperContext bounds everything a helper does.
func helperContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// lockHolder takes the lock, says so, and keeps it until told otherwise.
func lockHolder(home string) int {
	ctx, cancel := helperContext()
	defer cancel()
	unlock, err := NewFile(home, nil).Lock(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	waitStdin()
	if err := unlock(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("released")
	return 0
}

func TestLock_excludesOtherProcesses(t *testing.T) {
	home := t.TempDir()
	holder := startHelper(t, "hold-lock", home)
	holder.expect(t, "locked")

	ctx, cancel := contextWithTimeout(t, 100*time.Millisecond)
	defer cancel()
	if _, err := NewFile(home, nil).Lock(ctx); !errors.Is(err, states.ErrLockTimeout) {
		t.Fatalf("Lock while another process holds it: err = %v, want ErrLockTimeout", err)
	}

	holder.send(t, "release")
	holder.expect(t, "released")
	unlock, err := NewFile(home, nil).Lock(ctxT(t))
	if err != nil {
		t.Fatalf("Lock after the other process released it: %v", err)
	}
	_ = unlock()
}

// casWriter reads the version, waits for the go-ahead, then locks and
// saves its own record against the version it read before: the refresh
// race, where two processes decided on the same stale record.
func casWriter(home string) int {
	ctx, cancel := helperContext()
	defer cancel()
	s := NewFile(home, nil)
	_, v, err := s.Load(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("read " + string(v))
	waitStdin()

	unlock, err := s.Lock(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer unlock()
	nv, err := s.Save(ctx, managedRecord(nil, "rt_child_"+os.Getenv(helperIDEnv)), v)
	switch {
	case errors.Is(err, states.ErrConflict):
		fmt.Println("conflict")
	case err != nil:
		fmt.Println("error " + err.Error())
	default:
		fmt.Println("saved " + string(nv))
	}
	return 0
}

func TestProcesses_compareAndSwapLetsExactlyOneStaleWriterWin(t *testing.T) {
	ctx := ctxT(t)
	home := t.TempDir()
	v0, err := NewFile(home, nil).Save(ctx, managedRecord(t, "rt_initial"), states.NoVersion)
	if err != nil {
		t.Fatal(err)
	}

	children := []*child{
		startHelper(t, "cas", home, helperIDEnv+"=1"),
		startHelper(t, "cas", home, helperIDEnv+"=2"),
	}
	for i, c := range children {
		if v := c.expect(t, "read "); states.Version(v) != v0 {
			t.Fatalf("child %d read %s, want %s", i+1, v, v0)
		}
	}
	for _, c := range children {
		c.send(t, "go")
	}

	winner, conflicts := 0, 0
	var saved states.Version
	for i, c := range children {
		line, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case line == "conflict":
			conflicts++
		case strings.HasPrefix(line, "saved "):
			winner, saved = i+1, states.Version(strings.TrimPrefix(line, "saved "))
		default:
			t.Fatalf("child %d: %s", i+1, line)
		}
	}
	if winner == 0 || conflicts != 1 {
		t.Fatalf("winner %d, conflicts %d; want exactly one of each", winner, conflicts)
	}

	got, v, err := NewFile(home, nil).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("rt_child_%d", winner)
	if got.Tokens.RefreshToken.Reveal() != want || v != saved {
		t.Errorf("stored %q at %s, want the winner's %s at %s",
			got.Tokens.RefreshToken.Reveal(), v, want, saved)
	}
}

// casRereader does what the engine does before a redemption: lock, read,
// decide, save against what it read under the lock.
func casRereader(home string) int {
	ctx, cancel := helperContext()
	defer cancel()
	s := NewFile(home, nil)
	waitStdin()
	unlock, err := s.Lock(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer unlock()
	_, v, err := s.Load(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	time.Sleep(30 * time.Millisecond) // a token endpoint round trip
	nv, err := s.Save(ctx, managedRecord(nil, "rt_child_"+os.Getenv(helperIDEnv)), v)
	if err != nil {
		fmt.Println("error " + err.Error())
		return 0
	}
	fmt.Printf("read %s saved %s\n", v, nv)
	return 0
}

func TestProcesses_lockThenRereadSerialisesWriters(t *testing.T) {
	ctx := ctxT(t)
	home := t.TempDir()
	v0, err := NewFile(home, nil).Save(ctx, managedRecord(t, "rt_initial"), states.NoVersion)
	if err != nil {
		t.Fatal(err)
	}
	children := []*child{
		startHelper(t, "cas-reread", home, helperIDEnv+"=1"),
		startHelper(t, "cas-reread", home, helperIDEnv+"=2"),
	}
	for _, c := range children {
		c.send(t, "go")
	}

	type result struct{ id, read, saved string }
	var results []result
	for i, c := range children {
		line, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		var r result
		if _, err := fmt.Sscanf(line, "read %s saved %s", &r.read, &r.saved); err != nil {
			t.Fatalf("child %d: %s", i+1, line)
		}
		r.id = fmt.Sprint(i + 1)
		results = append(results, r)
	}
	first, second := results[0], results[1]
	if second.read == string(v0) {
		first, second = second, first
	}
	// The second writer saw the first one's record: nothing was lost.
	if first.read != string(v0) || second.read != first.saved {
		t.Fatalf("reads %+v; want one to read the initial version "+
			"and the other the first's save", results)
	}
	got, v, err := NewFile(home, nil).Load(ctx)
	if err != nil || v != states.Version(second.saved) ||
		got.Tokens.RefreshToken.Reveal() != "rt_child_"+second.id {
		t.Errorf("stored %q at %s (%v), want the second writer's",
			got.Tokens.RefreshToken.Reveal(), v, err)
	}
}
