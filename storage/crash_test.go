package storage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/states"
)

// crashRecords are the two records the crash writer alternates between.
// They differ in every token and in length, so a torn file cannot pass for
// either.
func crashRecords() [2]states.Record {
	a := managedRecord(nil, "rt_crash_A")
	b := managedRecord(nil, "rt_crash_B_"+strings.Repeat("b", 700))
	b.APIKey = states.NewSecret("sk-exchanged-B")
	b.Tokens.AccountID = ""
	b.LastRefresh = b.LastRefresh.Add(time.Hour + 123*time.Nanosecond)
	return [2]states.Record{a, b}
}

// crashWriter saves the two records in turn as fast as it can, until it is
// killed. It says "ready" once, after its first save, so the parent kills
// it while it is writing rather than while it is starting.
func crashWriter(home string) int {
	ctx, cancel := helperContext()
	defer cancel()
	s := NewFile(home, nil)
	recs := crashRecords()
	for i := 0; ; i++ {
		if _, err := s.Save(ctx, recs[i%2], states.AnyVersion); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		if i == 0 {
			fmt.Println("ready")
		}
	}
}

// A process killed at any instant of a save leaves the old record or the
// new one: never a torn file, never no file.
func TestFile_killedWriterNeverTearsTheRecord(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL")
	}
	const (
		workers = 8  // homes written and checked in parallel
		rounds  = 26 // kills per home: 208 in all
	)
	recs := crashRecords()
	var kills, leftovers atomic.Int64
	start := time.Now()

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		home := filepath.Join(t.TempDir(), "codex")
		if _, err := NewFile(home, nil).Save(ctxT(t), recs[0], states.NoVersion); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range rounds {
				if err := killOneWriter(home, recs); err != nil {
					errs <- fmt.Errorf("home %d, round %d: %w", w, round, err)
					return
				}
				kills.Add(1)
			}
			leftovers.Add(int64(countTempFiles(home)))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Temporary files left behind are saves that were cut off between
	// creating and renaming: proof that kills landed mid-write.
	t.Logf("%d kills in %v; %d left an interrupted save's temporary file",
		kills.Load(), time.Since(start).Round(time.Millisecond), leftovers.Load())
}

// killOneWriter starts a crash writer on home, kills it at a random moment
// of its save loop, and checks what it left.
func killOneWriter(home string, recs [2]states.Record) error {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=crash-writer", homeEnv+"="+home)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, len("ready\n"))
		_, err := stdout.Read(buf)
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return fmt.Errorf("writer did not start: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return errors.New("writer did not start within 10 s")
	}

	time.Sleep(time.Duration(rand.Int64N(int64(3 * time.Millisecond))))
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != -1 {
		return fmt.Errorf("writer ended by itself (%v); stderr: %s", err, stderr.String())
	}
	return checkCrashResult(home, recs)
}

// checkCrashResult requires home's file to hold one of the two records in
// full, with the permissions a save leaves.
func checkCrashResult(home string, recs [2]states.Record) error {
	path := filepath.Join(home, AuthFileName)
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("the record is gone: %w", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		return fmt.Errorf("the file has mode %#o, want 0600", perm)
	}
	ctx, cancel := helperContext()
	defer cancel()
	got, _, err := NewFile(home, nil).Load(ctx)
	if err != nil {
		return fmt.Errorf("the file does not load: %w", err)
	}
	if cmp.Diff(recs[0], got) != "" && cmp.Diff(recs[1], got) != "" {
		return fmt.Errorf("the file holds neither record:\n%s", cmp.Diff(recs[0], got))
	}
	return nil
}

// countTempFiles counts the temporary files of interrupted saves in home.
func countTempFiles(home string) int {
	entries, _ := os.ReadDir(home)
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "."+AuthFileName) {
			n++
		}
	}
	return n
}
