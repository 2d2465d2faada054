package storage

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/zalando/go-keyring"

	"github.com/credfsm/credfsm/states"
)

func TestAuto_roundTripsEveryShape(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			keyring.MockInit()
			ctx := ctxT(t)
			home := t.TempDir()
			if err := keyring.Set("Codex Auth", KeyringAccount(home), f.json); err != nil {
				t.Fatal(err)
			}
			s := NewAuto(home, nil, 0, nil)
			got, v, err := s.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(f.want, got); diff != "" {
				t.Errorf("Load (-want +got):\n%s", diff)
			}
			if _, err := s.Save(ctx, got, v); err != nil {
				t.Fatal(err)
			}
			again, _, err := s.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(f.want, again); diff != "" {
				t.Errorf("Load after Save (-want +got):\n%s", diff)
			}
			if info := s.Info(); info.InsecureFallback || info.Kind != "auto" {
				t.Errorf("Info() = %+v, want auto without fallback", info)
			}
		})
	}
}

func TestAuto_loadPrefersTheKeyring(t *testing.T) {
	keyring.MockInit()
	home := t.TempDir()
	writeRaw(t, home, fixtures(t)[1].json, 0o600) // API key in the file
	if err := keyring.Set("Codex Auth", KeyringAccount(home), fixtures(t)[0].json); err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogger()
	s := NewAuto(home, nil, 0, logger)
	got, _, err := s.Load(ctxT(t))
	if err != nil || got.Mode != states.ModeManaged {
		t.Fatalf("Load = %v, %v; want the keyring's managed record", got.Mode, err)
	}
	// Two records in two places: one is stale, and a person should know.
	if note := s.Info().Note; !strings.Contains(note, "ignored") {
		t.Errorf("Info().Note = %q, want it to say the file is ignored", note)
	}
	if n := logs.count(slogWarn, "ignored"); n != 1 {
		t.Errorf("warned %d times about the ignored file, want once", n)
	}
}

func TestAuto_loadUsesTheFileWhenTheKeyringIsEmpty(t *testing.T) {
	keyring.MockInit()
	home := t.TempDir()
	writeRaw(t, home, fixtures(t)[1].json, 0o600)
	s := NewAuto(home, nil, 0, nil)
	got, _, err := s.Load(ctxT(t))
	if err != nil || got.Mode != states.ModeAPIKey {
		t.Fatalf("Load = %v, %v; want the file's API key", got.Mode, err)
	}
	// The credential in use is plaintext, and Info says so until a save
	// moves it to the keyring.
	if info := s.Info(); !info.InsecureFallback || !strings.Contains(info.Note, "next save") {
		t.Errorf("Info() = %+v, want the plaintext record reported", info)
	}
	if _, err := s.Save(ctxT(t), got, states.AnyVersion); err != nil {
		t.Fatal(err)
	}
	if info := s.Info(); info.InsecureFallback {
		t.Errorf("after the move to the keyring, Info() = %+v", info)
	}
}

// The fallback is never silent: a warning once, and Info says so for as
// long as it lasts.
func TestAuto_fallbackIsVisible(t *testing.T) {
	keyring.MockInitWithError(errors.New("no secret service on the bus"))
	t.Cleanup(keyring.MockInit)
	ctx := ctxT(t)
	home := t.TempDir()
	writeRaw(t, home, fixtures(t)[1].json, 0o600)
	logger, logs := newLogger()
	s := NewAuto(home, nil, 0, logger)

	for range 3 {
		got, _, err := s.Load(ctx)
		if err != nil || got.Mode != states.ModeAPIKey {
			t.Fatalf("Load = %v, %v; want the file's record", got.Mode, err)
		}
	}
	if n := logs.count(slogWarn, "using the plaintext credential file"); n != 1 {
		t.Errorf("warned %d times, want once", n)
	}
	info := s.Info()
	if !info.InsecureFallback || info.Location != filepath.Join(home, AuthFileName) ||
		!strings.Contains(info.Note, "no secret service on the bus") {
		t.Errorf("Info() = %+v, want InsecureFallback, the file's path and the reason", info)
	}

	// Saving falls back too, to the file.
	if _, err := s.Save(ctx, managedRecord(t, "rt_fallback"), states.AnyVersion); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if raw := readRaw(t, home); !strings.Contains(raw, "rt_fallback") {
		t.Errorf("the fallback save did not reach the file:\n%s", raw)
	}

	// And when the keyring is back, so is the normal state.
	keyring.MockInit()
	if _, err := s.Save(ctx, managedRecord(t, "rt_back"), states.AnyVersion); err != nil {
		t.Fatal(err)
	}
	if s.Info().InsecureFallback {
		t.Errorf("still reporting a fallback after the keyring took a save")
	}
	if fileExists(filepath.Join(home, AuthFileName)) {
		t.Errorf("the plaintext file survived a keyring save")
	}
}

func TestAuto_fallsBackWhenTheKeyringHangs(t *testing.T) {
	fk := newFakeKeyring()
	fk.block = make(chan struct{})
	t.Cleanup(func() { close(fk.block) })
	home := t.TempDir()
	writeRaw(t, home, fixtures(t)[1].json, 0o600)
	logger, logs := newLogger()
	s := NewAuto(home, fk, 30*time.Millisecond, logger)

	start := time.Now()
	got, _, err := s.Load(ctxT(t))
	if err != nil || got.Mode != states.ModeAPIKey {
		t.Fatalf("Load = %v, %v; want the file's record", got.Mode, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Load took %v", took)
	}
	warned := logs.count(slogWarn, "using the plaintext credential file")
	if !s.Info().InsecureFallback || warned != 1 {
		t.Errorf("hang not reported: Info %+v", s.Info())
	}
}

func TestAuto_saveGoesToTheKeyringAndRemovesTheFile(t *testing.T) {
	keyring.MockInit()
	ctx := ctxT(t)
	home := t.TempDir()
	path := writeRaw(t, home, fixtures(t)[1].json, 0o600)
	s := NewAuto(home, nil, 0, nil)
	_, v, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The version read from the file is what the save compares with.
	if _, err := s.Save(ctx, managedRecord(t, "rt_new"), v); err != nil {
		t.Fatal(err)
	}
	if fileExists(path) {
		t.Errorf("plaintext file survived")
	}
	value, err := keyring.Get("Codex Auth", KeyringAccount(home))
	if err != nil || !strings.Contains(value, "rt_new") {
		t.Errorf("keyring holds %q, %v; want the new record", value, err)
	}
}

// A keyring that answers but refuses the record (too big for Windows'
// Credential Manager, say) must not keep its old record: it would shadow
// the file the new one falls back to and bring a spent token back.
func TestAuto_refusedSaveDoesNotLeaveAStaleKeyringRecord(t *testing.T) {
	ctx := ctxT(t)
	home := t.TempDir()
	fk := newFakeKeyring()
	s := NewAuto(home, fk, 0, nil)
	if _, err := s.Save(ctx, managedRecord(t, "rt_old"), states.NoVersion); err != nil {
		t.Fatal(err)
	}
	_, v, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}

	fk.mu.Lock()
	fk.setErr = keyring.ErrSetDataTooBig
	fk.mu.Unlock()
	if _, err := s.Save(ctx, managedRecord(t, "rt_new"), v); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if _, ok := fk.value(home); ok {
		t.Errorf("the keyring still holds the old record")
	}
	got, _, err := s.Load(ctx)
	if err != nil || got.Tokens.RefreshToken.Reveal() != "rt_new" {
		t.Errorf("Load = %q, %v; want rt_new", got.Tokens.RefreshToken.Reveal(), err)
	}
	if info := s.Info(); !info.InsecureFallback || !strings.Contains(info.Note, "too big") {
		t.Errorf("Info() = %+v, want the refusal reported", info)
	}

	// If the old record cannot be removed either, nothing is saved.
	fk.mu.Lock()
	fk.setErr, fk.delErr = keyring.ErrSetDataTooBig, errors.New("access denied")
	fk.mu.Unlock()
	fk.put(home, `{"auth_mode":"apikey","OPENAI_API_KEY":"sk-SECRET-old"}`)
	_, v, _ = s.Load(ctx)
	before := readRaw(t, home)
	if _, err := s.Save(ctx, managedRecord(t, "rt_newer"), v); err == nil {
		t.Errorf("Save succeeded although the stale keyring record stays")
	}
	if after := readRaw(t, home); after != before {
		t.Errorf("the file changed although the save failed")
	}
}

// An entry that does not parse is an error, not a reason to read an older
// plaintext record instead.
func TestAuto_unreadableKeyringEntryIsAnError(t *testing.T) {
	keyring.MockInit()
	home := t.TempDir()
	writeRaw(t, home, fixtures(t)[1].json, 0o600)
	if err := keyring.Set("Codex Auth", KeyringAccount(home), `{"tokens":`); err != nil {
		t.Fatal(err)
	}
	_, _, err := NewAuto(home, nil, 0, nil).Load(ctxT(t))
	var le *LoadError
	if !errors.As(err, &le) || !strings.HasPrefix(le.Path, "keyring Codex Auth/cli|") {
		t.Errorf("err = %v, want a *LoadError naming the keyring entry", err)
	}
}

func TestAuto_deleteClearsBothEvenWhenTheKeyringFails(t *testing.T) {
	keyring.MockInitWithError(errors.New("keyring locked"))
	t.Cleanup(keyring.MockInit)
	home := t.TempDir()
	path := writeRaw(t, home, fixtures(t)[0].json, 0o600)
	got, err := NewAuto(home, nil, 0, nil).Delete(ctxT(t))
	if !errors.Is(err, ErrKeyringUnavailable) || fileExists(path) {
		t.Errorf("Delete err = %v, file left %v; want the keyring error and the file gone",
			err, fileExists(path))
	}
	if len(got) != 2 {
		t.Errorf("removals = %+v, want one for the keyring and one for the file", got)
	}
}
