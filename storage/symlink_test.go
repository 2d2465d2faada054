package storage

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credfsm/credfsm/states"
)

// symlink makes link point at dest, skipping the test where symlinks
// cannot be made.
func symlink(t *testing.T, dest, link string) {
	t.Helper()
	if err := os.Symlink(dest, link); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
}

// assertLink fails unless path is still a symbolic link to dest.
func assertLink(t *testing.T, path, dest string) {
	t.Helper()
	got, err := os.Readlink(path)
	if err != nil {
		t.Fatalf("%s is no longer a symbolic link: %v", path, err)
	}
	if got != dest {
		t.Errorf("%s now points at %s, want %s", path, got, dest)
	}
}

// readFile returns the content of path.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertNoTempFiles fails when dir holds a temporary file of a save.
func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("%s holds a leftover %s", dir, e.Name())
		}
	}
}

// A save through a symlinked auth.json writes the file it leads to and
// keeps the link, as Codex does: another program reading that file sees the
// rotated tokens.
func TestFile_saveWritesThroughASymlink(t *testing.T) {
	cases := []struct {
		name string
		// dest returns what the link holds, given the home and another
		// directory; target the file that must be written.
		dest, target func(home, other string) string
	}{
		{"relative, same directory",
			func(string, string) string { return "real.json" },
			func(home, _ string) string { return filepath.Join(home, "real.json") }},
		{"relative, another directory",
			func(string, string) string { return filepath.Join("..", "other", "real.json") },
			func(_, other string) string { return filepath.Join(other, "real.json") }},
		{"absolute, another directory",
			func(_, other string) string { return filepath.Join(other, "real.json") },
			func(_, other string) string { return filepath.Join(other, "real.json") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			root := t.TempDir()
			home, other := filepath.Join(root, "home"), filepath.Join(root, "other")
			for _, d := range []string{home, other} {
				if err := mkdirAll(d); err != nil {
					t.Fatal(err)
				}
			}
			target := tc.target(home, other)
			if err := os.WriteFile(target, []byte(fixtures(t)[0].json), 0o644); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(home, AuthFileName)
			dest := tc.dest(home, other)
			symlink(t, dest, link)

			s := NewFile(home, nil)
			rec, v, err := s.Load(ctx)
			if err != nil {
				t.Fatalf("Load through the link: %v", err)
			}
			rec.Tokens.RefreshToken = states.NewSecret("rt_rotated")
			v2, err := s.Save(ctx, rec, v)
			if err != nil {
				t.Fatalf("Save through the link: %v", err)
			}

			assertLink(t, link, dest)
			if got := readFile(t, target); !strings.Contains(got, `"rt_rotated"`) {
				t.Errorf("the link's target was not updated:\n%s", got)
			}
			if versionOf([]byte(readFile(t, target)), true) != v2 {
				t.Errorf("Save returned a version other than the target's")
			}
			assertPerm(t, target, 0o600)
			assertNoTempFiles(t, home)
			assertNoTempFiles(t, other)

			again, v3, err := s.Load(ctx)
			if err != nil || v3 != v2 {
				t.Fatalf("Load after Save = version %s, %v; want %s", v3, err, v2)
			}
			if diff := cmp.Diff(rec, again); diff != "" {
				t.Errorf("Load after Save (-want +got):\n%s", diff)
			}
		})
	}
}

// Links to links are followed to the end, and directories that are links
// on the way are resolved before ".." is applied, as the kernel does.
func TestFile_saveWritesThroughAChainOfLinks(t *testing.T) {
	ctx := ctxT(t)
	root := t.TempDir()
	for _, d := range []string{"home", "data/deep", "data/shared"} {
		if err := mkdirAll(filepath.Join(root, d)); err != nil {
			t.Fatal(err)
		}
	}
	home := filepath.Join(root, "home")
	target := filepath.Join(root, "data", "shared", "real.json")
	// home/auth.json -> hop -> via/../shared/real.json, where via is a
	// link to data/deep: ".." is data, not home.
	symlink(t, filepath.Join(root, "data", "deep"), filepath.Join(home, "via"))
	sep := string(filepath.Separator) // filepath.Join would clean the ".." away
	if err := os.Symlink("via"+sep+".."+sep+"shared"+sep+"real.json",
		filepath.Join(home, "hop")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("hop", filepath.Join(home, AuthFileName)); err != nil {
		t.Fatal(err)
	}

	s := NewFile(home, nil)
	if _, err := s.Save(ctx, managedRecord(t, "rt_chain"), states.NoVersion); err != nil {
		t.Fatalf("Save through a dangling chain: %v", err)
	}
	if got := readFile(t, target); !strings.Contains(got, `"rt_chain"`) {
		t.Errorf("the end of the chain was not written:\n%s", got)
	}
	assertLink(t, filepath.Join(home, AuthFileName), "hop")
	if fileExists(filepath.Join(root, "shared")) || fileExists(filepath.Join(home, "shared")) {
		t.Errorf("\"..\" was applied to the link's name instead of its target")
	}
	if _, _, err := s.Load(ctx); err != nil {
		t.Errorf("Load after Save: %v", err)
	}
}

// The compare of a save reads the file the save replaces: when the link is
// pointed elsewhere after a load, the old version no longer matches.
func TestFile_compareAndSwapFollowsTheLink(t *testing.T) {
	ctx := ctxT(t)
	home := t.TempDir()
	a, b := filepath.Join(home, "a.json"), filepath.Join(home, "b.json")
	recA, recB := managedRecord(t, "rt_a"), managedRecord(t, "rt_b")
	for path, rec := range map[string]states.Record{a: recA, b: recB} {
		data, err := encodeDocument(rec, document{}, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(home, AuthFileName)
	symlink(t, "a.json", link)
	s := NewFile(home, nil)
	_, va, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	symlink(t, "b.json", link)
	beforeA, beforeB := readFile(t, a), readFile(t, b)
	_, err = s.Save(ctx, managedRecord(t, "rt_c"), va)
	if !errors.Is(err, states.ErrConflict) {
		t.Fatalf("save with a.json's version after the link moved to b.json: err = %v, "+
			"want a conflict", err)
	}
	if readFile(t, a) != beforeA || readFile(t, b) != beforeB {
		t.Errorf("a refused save changed a file")
	}

	_, vb, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, managedRecord(t, "rt_c"), vb); err != nil {
		t.Fatalf("save with b.json's version: %v", err)
	}
	if readFile(t, a) != beforeA || !strings.Contains(readFile(t, b), `"rt_c"`) {
		t.Errorf("the save did not replace b.json alone")
	}
	assertLink(t, link, "b.json")
}

// A dangling link is an empty store; a save creates the file it names,
// when its directory exists, and keeps the link.
func TestFile_danglingSymlink(t *testing.T) {
	ctx := ctxT(t)
	root := t.TempDir()
	home, other := filepath.Join(root, "home"), filepath.Join(root, "other")
	if err := mkdirAll(home); err != nil {
		t.Fatal(err)
	}
	if err := mkdirAll(other); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(home, AuthFileName)
	dest := filepath.Join("..", "other", "real.json")
	symlink(t, dest, link)
	s := NewFile(home, nil)

	rec, v, err := s.Load(ctx)
	if err != nil || !rec.IsZero() || v != states.NoVersion {
		t.Fatalf("Load = %v, %q, %v; want the empty store", rec.Mode, v, err)
	}
	if _, err := s.Save(ctx, managedRecord(t, "rt_new"), states.NoVersion); err != nil {
		t.Fatalf("Save: %v", err)
	}
	assertLink(t, link, dest)
	target := filepath.Join(other, "real.json")
	if got := readFile(t, target); !strings.Contains(got, `"rt_new"`) {
		t.Errorf("the link's target was not created:\n%s", got)
	}
	assertPerm(t, target, 0o600)
}

// A dangling link into a directory that does not exist loads as the empty
// store, but a save fails, saying why, and creates nothing.
func TestFile_danglingSymlinkIntoAMissingDirectory(t *testing.T) {
	ctx := ctxT(t)
	root := t.TempDir()
	home := filepath.Join(root, "home")
	if err := mkdirAll(home); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(home, AuthFileName)
	dest := filepath.Join(root, "gone", "real.json")
	symlink(t, dest, link)
	s := NewFile(home, nil)

	rec, v, err := s.Load(ctx)
	if err != nil || !rec.IsZero() || v != states.NoVersion {
		t.Fatalf("Load = %v, %q, %v; want the empty store", rec.Mode, v, err)
	}
	_, err = s.Save(ctx, managedRecord(t, "rt"), states.NoVersion)
	if err == nil {
		t.Fatal("Save into a missing directory succeeded")
	}
	for _, want := range []string{link, "symbolic link", filepath.Join(root, "gone")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %q, want it to mention %q", err, want)
		}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want it to wrap fs.ErrNotExist", err)
	}
	assertNoSecret(t, err.Error(), fixtureSecrets(t))
	assertLink(t, link, dest)
	if fileExists(filepath.Join(root, "gone")) {
		t.Errorf("the save created the missing directory")
	}
}

// A link that leads back to itself is an error, not a hang.
func TestFile_symlinkLoop(t *testing.T) {
	ctx := ctxT(t)
	home := t.TempDir()
	link := filepath.Join(home, AuthFileName)
	symlink(t, AuthFileName, link)
	s := NewFile(home, nil)

	if _, _, err := s.Load(ctx); !errors.Is(err, states.ErrUnreadable) {
		t.Errorf("Load: err = %v, want an unreadable store", err)
	}
	if _, err := s.Save(ctx, managedRecord(t, "rt"), states.AnyVersion); err == nil {
		t.Errorf("Save through a loop succeeded")
	}
	assertLink(t, link, AuthFileName)
}

// Delete removes the link auth.json, as Codex's logout does, and leaves
// the file it led to (which may be another program's) in place, saying so
// in the log and in the Removal, where LeftInPlace finds it: a caller must
// be able to tell its user that a credential may remain.
func TestFile_deleteRemovesTheLinkNotItsTarget(t *testing.T) {
	ctx := ctxT(t)
	root := t.TempDir()
	home, other := filepath.Join(root, "home"), filepath.Join(root, "other")
	for _, d := range []string{home, other} {
		if err := mkdirAll(d); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(other, "real.json")
	if err := os.WriteFile(target, []byte(fixtures(t)[0].json), 0o600); err != nil {
		t.Fatal(err)
	}
	// What a save through the link that was killed before its rename
	// leaves next to the target.
	leftover := filepath.Join(other, ".real.json123456")
	if err := os.WriteFile(leftover, []byte("tokens"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(home, AuthFileName)
	symlink(t, target, link)
	logger, logs := newLogger()
	s := NewFile(home, logger)

	got, err := s.Delete(ctx)
	want := []states.Removal{{Backend: "file " + link + " (a symbolic link to " + target +
		", which was left in place)", Removed: true}}
	if diff := cmp.Diff(want, got); diff != "" || err != nil {
		t.Errorf("Delete err %v, removals (-want +got):\n%s", err, diff)
	}
	if len(got) == 1 {
		if kept, ok := LeftInPlace(got[0]); !ok || kept != target {
			t.Errorf("LeftInPlace = %q, %v; want %q, true", kept, ok, target)
		}
	}
	if fileExists(link) {
		t.Errorf("the link is still there")
	}
	if !fileExists(target) {
		t.Errorf("the link's target was removed")
	}
	if fileExists(leftover) {
		t.Errorf("a temporary file of a save through the link is still there")
	}
	if logs.count(slogWarn, "symbolic link") != 1 || !strings.Contains(logs.text(), target) {
		t.Errorf("no warning naming the target that was left:\n%s", logs.text())
	}
	assertNoSecret(t, logs.text(), fixtureSecrets(t))
	if rec, v, err := s.Load(ctx); err != nil || !rec.IsZero() || v != states.NoVersion {
		t.Errorf("Load after Delete = %v, %q, %v; want the empty store", rec.Mode, v, err)
	}
}

// LeftInPlace finds the target only in a removal that names one, and
// takes a path with odd characters as it is.
func TestLeftInPlace(t *testing.T) {
	odd := "/data/a (b), which/auth.json"
	for _, tt := range []struct {
		r      states.Removal
		target string
		ok     bool
	}{
		{states.Removal{Backend: fileBackend("/h/auth.json", "/data/auth.json"), Removed: true},
			"/data/auth.json", true},
		{states.Removal{Backend: fileBackend("/h/auth.json", odd), Removed: true}, odd, true},
		{states.Removal{Backend: fileBackend("/h/auth.json", ""), Removed: true}, "", false},
		{states.Removal{Backend: "keyring Codex Auth/cli|0123456789abcdef"}, "", false},
		{states.Removal{Backend: "memory cli|0123456789abcdef"}, "", false},
	} {
		target, ok := LeftInPlace(tt.r)
		if target != tt.target || ok != tt.ok {
			t.Errorf("LeftInPlace(%q) = %q, %v; want %q, %v", tt.r.Backend, target, ok,
				tt.target, tt.ok)
		}
	}
}
