package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zalando/go-keyring"

	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/states"
)

var (
	_ effects.Store = (*Store)(nil)
	_ effects.Store = (*File)(nil)
	_ effects.Store = (*Keyring)(nil)
	_ effects.Store = (*Auto)(nil)
	_ effects.Store = (*Ephemeral)(nil)
)

func openT(t *testing.T, home string, mode Mode) *Store {
	t.Helper()
	s, err := Open(Options{Home: home, Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOpen(t *testing.T) {
	keyring.MockInit()
	home := t.TempDir()
	for _, m := range []Mode{ModeFile, ModeKeyring, ModeAuto, ModeEphemeral} {
		s := openT(t, home, m)
		if got := s.Info().Kind; got != m.String() {
			t.Errorf("Open(%v).Info().Kind = %q", m, got)
		}
		if s.Home() != home || s.Mode() != m {
			t.Errorf("Open(%v): Home %q Mode %v", m, s.Home(), s.Mode())
		}
	}
	if _, err := Open(Options{Home: home, Mode: Mode(9)}); !errors.Is(err, ErrUnknownMode) {
		t.Errorf("Open(mode 9) err = %v, want ErrUnknownMode", err)
	}

	t.Setenv("CODEX_HOME", home)
	s, err := Open(Options{})
	if err != nil || s.Home() != home || s.Info().Location != filepath.Join(home, AuthFileName) {
		t.Errorf("Open(Options{}) = %+v, %v; want the file store of $CODEX_HOME", s, err)
	}
}

func TestStore_roundTripsEveryShapeInEveryMode(t *testing.T) {
	for _, mode := range []Mode{ModeFile, ModeKeyring, ModeAuto, ModeEphemeral} {
		for _, f := range fixtures(t) {
			t.Run(mode.String()+"/"+f.name, func(t *testing.T) {
				keyring.MockInit()
				ctx := ctxT(t)
				home := t.TempDir()
				s := openT(t, home, mode)
				v, err := s.Save(ctx, f.want, states.NoVersion)
				if err != nil {
					t.Fatal(err)
				}
				got, v2, err := s.Load(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(f.want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				if v2 != v {
					t.Errorf("Load version %s, Save returned %s", v2, v)
				}
				// Persisted modes never write host-managed tokens to disk.
				onDisk := fileExists(filepath.Join(home, AuthFileName))
				if want := mode == ModeFile && f.want.Mode != states.ModeExternal; onDisk != want {
					t.Errorf("auth.json exists = %v, want %v", onDisk, want)
				}
			})
		}
	}
}

func TestStore_hostManagedTokensTakePrecedence(t *testing.T) {
	ctx := ctxT(t)
	home := t.TempDir()
	writeRaw(t, home, fixtures(t)[1].json, 0o600) // a stored API key
	s := openT(t, home, ModeFile)

	_, vFile, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ext := externalRecord(t)
	// The compare-and-swap is against what Load showed: the file.
	vExt, err := s.Save(ctx, ext, vFile)
	if err != nil {
		t.Fatalf("Save(external, file version): %v", err)
	}

	got, v, err := s.Load(ctx)
	if err != nil || got.Mode != states.ModeExternal || v != vExt {
		t.Errorf("Load = %v, %s, %v; want the host-managed record at %s", got.Mode, v, err, vExt)
	}
	if raw := readRaw(t, home); !strings.Contains(raw, fixtureAPIKey) {
		t.Errorf("the file changed; host tokens must stay in memory:\n%s", raw)
	}
	if note := s.Info().Note; !strings.Contains(note, "take precedence") {
		t.Errorf("Info().Note = %q, want the precedence explained", note)
	}

	// A save of a persisted record checks against what Load shows (the
	// memory entry), goes to the file, and replaces the host-managed tokens:
	// the memory entry is dropped, so Load shows what was saved.
	if _, err := s.Save(ctx, managedRecord(t, "rt"), vFile); !errors.Is(err, states.ErrConflict) {
		t.Errorf("save against the file's version while memory shadows it: "+
			"err = %v, want ErrConflict", err)
	}
	vManaged, err := s.Save(ctx, managedRecord(t, "rt"), vExt)
	if err != nil {
		t.Fatal(err)
	}
	if raw := readRaw(t, home); !strings.Contains(raw, `"rt"`) {
		t.Errorf("the managed record did not reach the file:\n%s", raw)
	}
	got, v, _ = s.Load(ctx)
	if got.Mode != states.ModeManaged || v != vManaged {
		t.Errorf("Load = %v at %s; want the saved managed record at %s", got.Mode, v, vManaged)
	}
	if note := s.Info().Note; strings.Contains(note, "take precedence") {
		t.Errorf("Info().Note = %q; nothing is left in memory to take precedence", note)
	}
}

func TestStore_ephemeralModeKeepsEverythingInMemory(t *testing.T) {
	ctx := ctxT(t)
	home := filepath.Join(t.TempDir(), "codex")
	s := openT(t, home, ModeEphemeral)
	if _, err := s.Save(ctx, managedRecord(t, "rt"), states.NoVersion); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = unlock()
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ephemeral mode touched the disk: %v", err)
	}
	// A file store of the same home does not see it; a memory one does.
	if rec, _, _ := NewFile(home, nil).Load(ctx); !rec.IsZero() {
		t.Errorf("the record reached the file")
	}
	if rec, _, _ := NewEphemeral(home).Load(ctx); rec.IsZero() {
		t.Errorf("the record is not in memory")
	}
}

func TestStore_deleteClearsEveryBackend(t *testing.T) {
	tests := []struct {
		mode     Mode
		backends []string // prefixes of the Removal.Backend values, in order
	}{
		{ModeFile, []string{"memory ", "file "}},
		{ModeKeyring, []string{"memory ", "keyring ", "file "}},
		{ModeAuto, []string{"memory ", "keyring ", "file "}},
		{ModeEphemeral, []string{"memory "}},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			keyring.MockInit()
			ctx := ctxT(t)
			home := t.TempDir()
			s := openT(t, home, tt.mode)
			if _, err := s.Save(ctx, externalRecord(t), states.AnyVersion); err != nil {
				t.Fatal(err)
			}
			if tt.mode != ModeEphemeral {
				err := keyring.Set("Codex Auth", KeyringAccount(home), fixtures(t)[1].json)
				if err != nil {
					t.Fatal(err)
				}
				writeRaw(t, home, fixtures(t)[1].json, 0o600)
			}

			got, err := s.Delete(ctx)
			if err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if len(got) != len(tt.backends) {
				t.Fatalf("removals = %+v, want %d", got, len(tt.backends))
			}
			for i, r := range got {
				if !strings.HasPrefix(r.Backend, tt.backends[i]) || !r.Removed || r.Err != nil {
					t.Errorf("removal %d = %+v, want %s…, removed", i, r, tt.backends[i])
				}
				if want := tt.backends[i] == "memory "; InMemory(r) != want {
					t.Errorf("InMemory(removal %d, %s) = %v, want %v", i, r.Backend,
						InMemory(r), want)
				}
			}
			if rec, v, err := s.Load(ctx); !rec.IsZero() || v != states.NoVersion || err != nil {
				t.Errorf("after Delete, Load = %v, %q, %v", rec.Mode, v, err)
			}
		})
	}
}

func TestStore_oneFailingBackendDoesNotStopTheOthers(t *testing.T) {
	keyring.MockInitWithError(errors.New("keyring locked"))
	t.Cleanup(keyring.MockInit)
	ctx := ctxT(t)
	home := t.TempDir()
	s := openT(t, home, ModeKeyring)
	if _, err := NewEphemeral(home).Save(ctx, externalRecord(t), states.AnyVersion); err != nil {
		t.Fatal(err)
	}
	path := writeRaw(t, home, fixtures(t)[0].json, 0o600)

	got, err := s.Delete(ctx)
	if !errors.Is(err, ErrKeyringUnavailable) {
		t.Errorf("err = %v, want the keyring's failure", err)
	}
	if len(got) != 3 || !got[0].Removed || got[1].Err == nil || !got[2].Removed {
		t.Errorf("removals = %+v, want memory removed, keyring failed, file removed", got)
	}
	if fileExists(path) {
		t.Errorf("the plaintext file survived")
	}
	if NewEphemeral(home).holds() {
		t.Errorf("the memory entry survived")
	}
}

// A failing file removal (a directory in its place) does not keep the
// keyring entry or the memory entry alive.
func TestStore_failingFileRemovalDoesNotStopTheOthers(t *testing.T) {
	keyring.MockInit()
	ctx := ctxT(t)
	home := t.TempDir()
	s := openT(t, home, ModeKeyring)
	if _, err := s.Save(ctx, managedRecord(t, "rt"), states.AnyVersion); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, externalRecord(t), states.AnyVersion); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(home, AuthFileName, "x"), 0o700); err != nil {
		t.Fatal(err)
	}

	got, err := s.Delete(ctx)
	if err == nil {
		t.Errorf("Delete hid the failure to remove the file")
	}
	if len(got) != 3 || !got[0].Removed || !got[1].Removed || got[2].Err == nil {
		t.Errorf("removals = %+v, want memory and keyring removed, file failed", got)
	}
}

// Host-managed tokens live in memory: an unreachable keyring does not keep
// an unconditional save of them out.
func TestStore_hostManagedSaveDoesNotNeedTheKeyring(t *testing.T) {
	keyring.MockInitWithError(errors.New("keyring locked"))
	t.Cleanup(keyring.MockInit)
	ctx := ctxT(t)
	s := openT(t, t.TempDir(), ModeKeyring)
	if _, err := s.Save(ctx, externalRecord(t), states.AnyVersion); err != nil {
		t.Fatalf("Save(external, AnyVersion): %v", err)
	}
	got, _, err := s.Load(ctx)
	if err != nil || got.Mode != states.ModeExternal {
		t.Errorf("Load = %v, %v; want the host-managed record", got.Mode, err)
	}
	// A conditional save still needs the version to compare with.
	if _, err := s.Save(ctx, managedRecord(t, "rt"), states.NoVersion); err == nil {
		t.Errorf("a managed save succeeded although the keyring is unreachable")
	}
}

// Unknown members survive a load and save in every persisted mode.
func TestStore_unknownMembersSurviveInEveryMode(t *testing.T) {
	stored := strings.Replace(fixtures(t)[0].json, `"auth_mode":"chatgpt",`,
		`"auth_mode":"chatgpt","from_another_tool":{"v":[1,"two"]},`, 1)
	stored = strings.Replace(stored, `"account_id":`, `"token_extra":true,"account_id":`, 1)
	for _, mode := range []Mode{ModeFile, ModeKeyring, ModeAuto, ModeEphemeral} {
		t.Run(mode.String(), func(t *testing.T) {
			keyring.MockInit()
			ctx := ctxT(t)
			home := t.TempDir()
			s := openT(t, home, mode)
			read := func() string { return readRaw(t, home) }
			switch mode {
			case ModeFile:
				writeRaw(t, home, stored, 0o600)
			case ModeKeyring, ModeAuto:
				if err := keyring.Set(KeyringService, KeyringAccount(home), stored); err != nil {
					t.Fatal(err)
				}
				read = func() string {
					v, _ := keyring.Get(KeyringService, KeyringAccount(home))
					return v
				}
			case ModeEphemeral:
				memory.mu.Lock()
				if memory.m == nil {
					memory.m = map[string][]byte{}
				}
				memory.m[KeyringAccount(home)] = []byte(stored)
				memory.mu.Unlock()
				t.Cleanup(func() { _, _ = s.Delete(ctxT(t)) })
				read = func() string {
					memory.mu.Lock()
					defer memory.mu.Unlock()
					return string(memory.m[KeyringAccount(home)])
				}
			}

			rec, v, err := s.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rec.Tokens.RefreshToken = states.NewSecret("rt_rotated")
			if _, err := s.Save(ctx, rec, v); err != nil {
				t.Fatal(err)
			}
			got := strings.NewReplacer(" ", "", "\n", "").Replace(read())
			wants := []string{
				`"from_another_tool":{"v":[1,"two"]}`, `"token_extra":true`, `"rt_rotated"`,
			}
			for _, want := range wants {
				if !strings.Contains(got, want) {
					t.Errorf("stored record lacks %s:\n%s", want, got)
				}
			}
		})
	}
}
