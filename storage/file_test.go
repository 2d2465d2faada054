package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/states"
)

func TestFile_roundTripsEveryShape(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			ctx := ctxT(t)
			home := t.TempDir()
			writeRaw(t, home, f.json, 0o600)
			s := NewFile(home, nil)

			got, v, err := s.Load(ctx)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(f.want, got); diff != "" {
				t.Errorf("Load (-want +got):\n%s", diff)
			}
			sum := sha256.Sum256([]byte(f.json))
			if want := states.Version(hex.EncodeToString(sum[:])); v != want {
				t.Errorf("version = %s, want the SHA-256 of the file %s", v, want)
			}

			v2, err := s.Save(ctx, got, v)
			if err != nil {
				t.Fatalf("Save: %v", err)
			}
			again, v3, err := s.Load(ctx)
			if err != nil {
				t.Fatalf("Load after Save: %v", err)
			}
			if diff := cmp.Diff(f.want, again); diff != "" {
				t.Errorf("Load after Save (-want +got):\n%s", diff)
			}
			if v3 != v2 {
				t.Errorf("Load version %s, Save returned %s", v3, v2)
			}

			raw := readRaw(t, home)
			if !strings.HasPrefix(raw, "{\n  \"auth_mode\": ") {
				t.Errorf("file is not pretty-printed with two spaces:\n%s", raw)
			}
			if !strings.Contains(raw, `"OPENAI_API_KEY": `) {
				t.Errorf("OPENAI_API_KEY not written:\n%s", raw)
			}
		})
	}
}

func TestFile_missingFileIsEmptyAndCreatesNothing(t *testing.T) {
	home := filepath.Join(t.TempDir(), "not-yet")
	got, v, err := NewFile(home, nil).Load(ctxT(t))
	if err != nil || !got.IsZero() || v != states.NoVersion {
		t.Errorf("Load = %v, %q, %v; want zero record, NoVersion, nil", got.Mode, v, err)
	}
	if fileExists(home) {
		t.Errorf("Load created %s", home)
	}
}

func TestFile_saveIsCompareAndSwap(t *testing.T) {
	ctx := ctxT(t)
	home := t.TempDir()
	s := NewFile(home, nil)
	a, b, c := managedRecord(t, "rt_a"), managedRecord(t, "rt_b"), managedRecord(t, "rt_c")

	va, err := s.Save(ctx, a, states.NoVersion)
	if err != nil {
		t.Fatalf("first save into an empty store: %v", err)
	}
	before := readRaw(t, home)

	steps := []struct {
		name     string
		rec      states.Record
		expected states.Version
		conflict bool
	}{
		{"NoVersion when something is stored", b, states.NoVersion, true},
		{"a version never stored", b, states.Version("deadbeef"), true},
		{"the current version", b, va, false},
		{"the version just replaced", c, va, true},
	}
	for _, st := range steps {
		_, err := s.Save(ctx, st.rec, st.expected)
		if got := errors.Is(err, states.ErrConflict); got != st.conflict {
			t.Fatalf("%s: err = %v, conflict %v, want %v", st.name, err, got, st.conflict)
		}
		var ce *ConflictError
		if st.conflict {
			if !errors.As(err, &ce) || ce.Path != s.Path() || ce.Expected != st.expected {
				t.Errorf("%s: err = %#v, want a *ConflictError naming the file", st.name, err)
			}
			if got := readRaw(t, home); got != before {
				t.Errorf("%s: a refused save changed the file", st.name)
			}
		}
		before = readRaw(t, home)
	}

	if _, err := s.Save(ctx, c, states.AnyVersion); err != nil {
		t.Errorf("AnyVersion save: %v", err)
	}
	got, _, _ := s.Load(ctx)
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("after AnyVersion save (-want +got):\n%s", diff)
	}
}

func TestFile_saveKeepsUnknownMembers(t *testing.T) {
	ctx := ctxT(t)
	home := t.TempDir()
	f := fixtures(t)[0]
	withExtras := strings.Replace(f.json, `"auth_mode":"chatgpt",`,
		`"auth_mode":"chatgpt","written_by":{"tool":"other","v":[1,2]},`, 1)
	withExtras = strings.Replace(withExtras,
		`"refresh_token":`, `"token_type":"Bearer","refresh_token":`, 1)
	writeRaw(t, home, withExtras, 0o600)

	s := NewFile(home, nil)
	rec, v, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec.Tokens.RefreshToken = states.NewSecret("rt_rotated")
	if _, err := s.Save(ctx, rec, v); err != nil {
		t.Fatal(err)
	}
	raw := readRaw(t, home)
	wants := []string{
		`"written_by": {`, `"tool": "other"`, `"token_type": "Bearer"`, `"rt_rotated"`,
	}
	for _, want := range wants {
		if !strings.Contains(raw, want) {
			t.Errorf("saved file lacks %s:\n%s", want, raw)
		}
	}
}

func TestFile_permissions(t *testing.T) {
	t.Run("created private", func(t *testing.T) {
		home := filepath.Join(t.TempDir(), "a", "codex")
		_, err := NewFile(home, nil).Save(ctxT(t), managedRecord(t, "rt"), states.NoVersion)
		if err != nil {
			t.Fatal(err)
		}
		assertPerm(t, home, 0o700)
		assertPerm(t, filepath.Join(home, AuthFileName), 0o600)
	})

	t.Run("tightened when looser", func(t *testing.T) {
		home := t.TempDir()
		if err := os.Chmod(home, 0o755); err != nil {
			t.Fatal(err)
		}
		writeRaw(t, home, fixtures(t)[0].json, 0o644)
		_, err := NewFile(home, nil).Save(ctxT(t), managedRecord(t, "rt"), states.AnyVersion)
		if err != nil {
			t.Fatal(err)
		}
		assertPerm(t, home, 0o700)
		assertPerm(t, filepath.Join(home, AuthFileName), 0o600)
	})

	t.Run("group-readable file loads and is reported once", func(t *testing.T) {
		ctx := ctxT(t)
		home := t.TempDir()
		writeRaw(t, home, fixtures(t)[0].json, 0o640)
		logger, logs := newLogger()
		s := NewFile(home, logger)

		for range 3 {
			if _, _, err := s.Load(ctx); err != nil {
				t.Fatalf("Load: %v", err)
			}
		}
		if n := logs.count(slogWarn, "readable by other users"); n != 1 {
			t.Errorf("logged the warning %d times, want once", n)
		}
		if note := s.Info().Note; !strings.Contains(note, "0640") {
			t.Errorf("Info().Note = %q, want it to mention mode 0640", note)
		}

		if _, err := s.Save(ctx, managedRecord(t, "rt"), states.AnyVersion); err != nil {
			t.Fatal(err)
		}
		if note := s.Info().Note; note != "" {
			t.Errorf("after the save made it 0600, Info().Note = %q", note)
		}
		assertNoSecret(t, logs.text(), fixtureSecrets(t))
	})

	t.Run("lock file private", func(t *testing.T) {
		home := filepath.Join(t.TempDir(), "codex")
		unlock, err := NewFile(home, nil).Lock(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		assertPerm(t, home, 0o700)
		assertPerm(t, filepath.Join(home, LockFileName), 0o600)
	})
}

func assertPerm(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %#o, want %#o", path, got, want)
	}
}

func TestFile_delete(t *testing.T) {
	ctx := ctxT(t)
	home := t.TempDir()
	s := NewFile(home, nil)
	if _, err := s.Save(ctx, managedRecord(t, "rt"), states.NoVersion); err != nil {
		t.Fatal(err)
	}
	// What a save killed between creating and renaming its file leaves.
	leftover := filepath.Join(home, "."+AuthFileName+"123456789")
	if err := os.WriteFile(leftover, []byte("tokens"), 0o600); err != nil {
		t.Fatal(err)
	}

	got, err := s.Delete(ctx)
	want := []states.Removal{{Backend: "file " + s.Path(), Removed: true}}
	if diff := cmp.Diff(want, got); diff != "" || err != nil {
		t.Errorf("Delete err %v, removals (-want +got):\n%s", err, diff)
	}
	for _, p := range []string{s.Path(), leftover} {
		if fileExists(p) {
			t.Errorf("%s still exists after Delete", p)
		}
	}

	got, err = s.Delete(ctx)
	want[0].Removed = false
	if diff := cmp.Diff(want, got); diff != "" || err != nil {
		t.Errorf("second Delete err %v, removals (-want +got):\n%s", err, diff)
	}
}

func TestFile_saveRefusesTheEmptyRecord(t *testing.T) {
	home := t.TempDir()
	_, err := NewFile(home, nil).Save(ctxT(t), states.Record{}, states.AnyVersion)
	if !errors.Is(err, ErrEmptyRecord) {
		t.Errorf("err = %v, want ErrEmptyRecord", err)
	}
	if fileExists(filepath.Join(home, AuthFileName)) {
		t.Errorf("an empty record was written")
	}
}

func TestFile_info(t *testing.T) {
	home := t.TempDir()
	want := states.StoreInfo{Kind: "file", Location: filepath.Join(home, AuthFileName)}
	if diff := cmp.Diff(want, NewFile(home, nil).Info()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

const (
	slogWarn = slog.LevelWarn
	slogInfo = slog.LevelInfo
)
