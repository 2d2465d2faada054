package storage

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The vector Codex's own test pins: "~/.codex" taken literally (no tilde
// expansion, and no such directory) hashes as the raw string.
func TestKeyringAccount_codexVector(t *testing.T) {
	t.Chdir(t.TempDir()) // so that no "~" directory can exist relative to us
	if got, want := KeyringAccount("~/.codex"), "cli|940db7b1d0e4eb40"; got != want {
		t.Errorf("KeyringAccount(~/.codex) = %q, want %q", got, want)
	}
}

// An existing home is canonicalised: every way of naming it maps to one
// account.
func TestKeyringAccount_canonicalisesExistingHomes(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(root, "codex")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "link")
	if err := os.Symlink(home, link); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	t.Chdir(root)

	want := KeyringAccount(home)
	names := []string{link, "codex", "./codex/", filepath.Join(root, "codex", "..", "codex")}
	for _, name := range names {
		if got := KeyringAccount(name); got != want {
			t.Errorf("KeyringAccount(%q) = %q, want %q (same as %q)", name, got, want, home)
		}
	}

	// A home that does not exist is hashed as given: a different account.
	missing := filepath.Join(root, "missing")
	if KeyringAccount(missing) == KeyringAccount(missing+"/") {
		t.Errorf("non-existent homes must hash as the raw string, so a trailing slash differs")
	}
}

func TestLossyUTF8_likeRust(t *testing.T) {
	const r = "\uFFFD"
	tests := []struct{ in, want string }{
		{"plain/ascii", "plain/ascii"},
		{"caf\u00e9", "caf\u00e9"},
		{"Hello \xF0\x90\x80World", "Hello " + r + "World"}, // one truncated sequence: one U+FFFD
		{"\xC0\x80", r + r},                                 // C0 never starts a sequence
		{"\xE2\x82", r},                                     // truncated three-byte sequence
		{"\xED\xA0\x80", r + r + r},                         // a surrogate: ED then two stray bytes
		{"a\xFFb", "a" + r + "b"},
		{"\xF4\x90\x80\x80", r + r + r + r}, // above U+10FFFF
		{"ok" + r, "ok" + r},                // a real U+FFFD stays one
	}
	for _, tt := range tests {
		if got := lossyUTF8(tt.in); got != tt.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDefaultHome(t *testing.T) {
	t.Setenv("CODEX_HOME", "/srv/codex-home")
	if got, err := DefaultHome(); err != nil || got != "/srv/codex-home" {
		t.Errorf("with CODEX_HOME: DefaultHome() = %q, %v", got, err)
	}

	t.Setenv("CODEX_HOME", "")
	user, err := os.UserHomeDir()
	if err != nil {
		t.Skip("no user home directory")
	}
	got, err := DefaultHome()
	if diff := cmp.Diff(filepath.Join(user, ".codex"), got); diff != "" || err != nil {
		t.Errorf("without CODEX_HOME: err %v, (-want +got):\n%s", err, diff)
	}
}
