package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/zalando/go-keyring"

	"github.com/credfsm/credfsm/states"
)

// Keyring tests swap the library's global mock provider, so none of them
// runs in parallel.

func TestKeyring_entryOfTheCodexVector(t *testing.T) {
	t.Chdir(t.TempDir())
	got := NewKeyring("~/.codex", nil, 0, nil).Entry()
	if want := "Codex Auth/cli|940db7b1d0e4eb40"; got != want {
		t.Errorf("Entry() = %q, want %q", got, want)
	}
}

func TestKeyring_roundTripsEveryShape(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			keyring.MockInit()
			ctx := ctxT(t)
			home := t.TempDir()
			if err := keyring.Set("Codex Auth", KeyringAccount(home), f.json); err != nil {
				t.Fatal(err)
			}
			s := NewKeyring(home, SystemKeyring{}, 0, nil)

			got, v, err := s.Load(ctx)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(f.want, got); diff != "" {
				t.Errorf("Load (-want +got):\n%s", diff)
			}
			if want := versionOf([]byte(f.json), true); v != want {
				t.Errorf("version %s, want the hash of the value %s", v, want)
			}

			v2, err := s.Save(ctx, got, v)
			if err != nil {
				t.Fatalf("Save: %v", err)
			}
			value, err := keyring.Get("Codex Auth", KeyringAccount(home))
			if err != nil {
				t.Fatal(err)
			}
			if strings.ContainsAny(value, "\n ") {
				t.Errorf("keyring value is not compact JSON: %s", value)
			}
			if !strings.Contains(value, `"OPENAI_API_KEY":`) {
				t.Errorf("OPENAI_API_KEY not written: %s", value)
			}
			if want := versionOf([]byte(value), true); v2 != want {
				t.Errorf("Save returned %s, want the hash of the stored value %s", v2, want)
			}
			again, _, err := s.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(f.want, again); diff != "" {
				t.Errorf("Load after Save (-want +got):\n%s", diff)
			}
			if fileExists(filepath.Join(home, AuthFileName)) {
				t.Errorf("keyring store wrote a plaintext file")
			}
		})
	}
}

func TestKeyring_saveIsCompareAndSwap(t *testing.T) {
	keyring.MockInit()
	ctx := ctxT(t)
	s := NewKeyring(t.TempDir(), nil, 0, nil)
	v1, err := s.Save(ctx, managedRecord(t, "rt_a"), states.NoVersion)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Save(ctx, managedRecord(t, "rt_b"), states.NoVersion)
	if !errors.Is(err, states.ErrConflict) {
		t.Errorf("save over a stored record with NoVersion: err = %v, want ErrConflict", err)
	}
	if _, err := s.Save(ctx, managedRecord(t, "rt_b"), v1); err != nil {
		t.Errorf("save with the current version: %v", err)
	}
	if _, err := s.Save(ctx, managedRecord(t, "rt_c"), v1); !errors.Is(err, states.ErrConflict) {
		t.Errorf("save with a stale version: err = %v, want ErrConflict", err)
	}
	got, _, _ := s.Load(ctx)
	if rt := got.Tokens.RefreshToken.Reveal(); rt != "rt_b" {
		t.Errorf("stored refresh token %q, want rt_b", rt)
	}
}

func TestKeyring_saveRemovesThePlaintextFile(t *testing.T) {
	keyring.MockInit()
	home := t.TempDir()
	path := writeRaw(t, home, fixtures(t)[0].json, 0o600)
	logger, logs := newLogger()
	s := NewKeyring(home, nil, 0, logger)

	if _, err := s.Save(ctxT(t), managedRecord(t, "rt"), states.AnyVersion); err != nil {
		t.Fatal(err)
	}
	if fileExists(path) {
		t.Errorf("%s survived a keyring save", path)
	}
	if n := logs.count(slogInfo, "removed the plaintext"); n != 1 {
		t.Errorf("removal logged %d times, want once", n)
	}
}

// Failing to remove the plaintext copy does not fail the save, and is not
// hidden either.
func TestKeyring_failureToRemoveThePlaintextFileIsReported(t *testing.T) {
	keyring.MockInit()
	home := t.TempDir()
	// A non-empty directory where auth.json should be cannot be removed.
	stuck := filepath.Join(home, AuthFileName)
	if err := os.MkdirAll(filepath.Join(stuck, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogger()
	s := NewKeyring(home, nil, 0, logger)

	if _, err := s.Save(ctxT(t), managedRecord(t, "rt"), states.AnyVersion); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if n := logs.count(slogWarn, "could not be removed"); n != 1 {
		t.Errorf("warned %d times, want once", n)
	}
	if note := s.Info().Note; !strings.Contains(note, stuck) {
		t.Errorf("Info().Note = %q, want it to name %s", note, stuck)
	}
}

func TestKeyring_platformErrorIsNotUnreadable(t *testing.T) {
	keyring.MockInitWithError(errors.New("dbus: no secret service"))
	t.Cleanup(keyring.MockInit)
	_, _, err := NewKeyring(t.TempDir(), nil, 0, nil).Load(ctxT(t))
	var ke *KeyringError
	if !errors.As(err, &ke) || ke.Op != "read" || !errors.Is(err, ErrKeyringUnavailable) {
		t.Fatalf("err = %v, want a *KeyringError for the read wrapping ErrKeyringUnavailable", err)
	}
	if errors.Is(err, states.ErrUnreadable) {
		t.Errorf("an unreachable keyring is not an unreadable record: %v", err)
	}
}

// A locked Secret Service never answers; the store must.
func TestKeyring_callsAreTimeBoxed(t *testing.T) {
	fk := newFakeKeyring()
	fk.block = make(chan struct{})
	t.Cleanup(func() { close(fk.block) }) // lets the abandoned call finish
	const box = 50 * time.Millisecond
	s := NewKeyring(t.TempDir(), fk, box, nil)

	start := time.Now()
	_, _, err := s.Load(ctxT(t))
	took := time.Since(start)
	var ke *KeyringError
	if !errors.As(err, &ke) || !errors.Is(err, ErrKeyringTimeout) ||
		!errors.Is(err, ErrKeyringUnavailable) {
		t.Fatalf("err = %v, want a *KeyringError wrapping ErrKeyringTimeout "+
			"and ErrKeyringUnavailable", err)
	}
	if took < box || took > 2*time.Second {
		t.Errorf("Load returned after %v, want about %v", took, box)
	}
	if ke.Waited < box {
		t.Errorf("Waited = %v, want at least %v", ke.Waited, box)
	}
	if !strings.Contains(err.Error(), "no answer within") {
		t.Errorf("message %q does not say the keyring gave no answer", err)
	}

	// While that call is stuck, the next fails at once instead of waiting
	// out another time box behind it.
	start = time.Now()
	_, err = s.Save(ctxT(t), managedRecord(t, "rt"), states.AnyVersion)
	if !errors.As(err, &ke) || !ke.Pending || !errors.Is(err, ErrKeyringTimeout) {
		t.Fatalf("second call err = %v, want a pending *KeyringError", err)
	}
	if took := time.Since(start); took > box {
		t.Errorf("second call took %v; it should not have waited", took)
	}
	if n := fk.callCount(); n != 1 {
		t.Errorf("the keyring saw %d calls, want only the first", n)
	}
}

func TestKeyring_timeBoxReleasesWhenTheKeyringAnswers(t *testing.T) {
	fk := newFakeKeyring()
	fk.block = make(chan struct{})
	s := NewKeyring(t.TempDir(), fk, 20*time.Millisecond, nil)
	if _, _, err := s.Load(ctxT(t)); !errors.Is(err, ErrKeyringTimeout) {
		t.Fatalf("err = %v, want a time-out", err)
	}

	fk.mu.Lock()
	close(fk.block)
	fk.block = nil
	fk.mu.Unlock()

	deadline := time.Now().Add(2 * time.Second)
	for {
		_, _, err := s.Load(ctxT(t))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the keyring answered but calls still fail: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestKeyring_deleteClearsKeyringAndFile(t *testing.T) {
	keyring.MockInit()
	ctx := ctxT(t)
	home := t.TempDir()
	s := NewKeyring(home, nil, 0, nil)
	if _, err := s.Save(ctx, managedRecord(t, "rt"), states.NoVersion); err != nil {
		t.Fatal(err)
	}
	writeRaw(t, home, fixtures(t)[1].json, 0o600) // a stale plaintext copy

	got, err := s.Delete(ctx)
	want := []states.Removal{
		{Backend: "keyring " + s.Entry(), Removed: true},
		{Backend: "file " + filepath.Join(home, AuthFileName), Removed: true},
	}
	if diff := cmp.Diff(want, got); diff != "" || err != nil {
		t.Errorf("Delete err %v, (-want +got):\n%s", err, diff)
	}
	_, err = keyring.Get("Codex Auth", KeyringAccount(home))
	if !errors.Is(err, keyring.ErrNotFound) {
		t.Errorf("keyring entry survived: %v", err)
	}
}

// Unlike Codex, a keyring that fails does not keep the file from going.
func TestKeyring_deleteRemovesTheFileEvenWhenTheKeyringFails(t *testing.T) {
	keyring.MockInitWithError(errors.New("keyring locked"))
	t.Cleanup(keyring.MockInit)
	home := t.TempDir()
	path := writeRaw(t, home, fixtures(t)[0].json, 0o600)

	got, err := NewKeyring(home, nil, 0, nil).Delete(ctxT(t))
	if !errors.Is(err, ErrKeyringUnavailable) {
		t.Errorf("err = %v, want it to report the keyring failure", err)
	}
	if fileExists(path) {
		t.Errorf("the plaintext file was left behind")
	}
	if len(got) != 2 || got[0].Err == nil || got[1].Err != nil || !got[1].Removed {
		t.Errorf("removals = %+v, want the keyring failed and the file removed", got)
	}
}
