package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// Names under the home directory and in the keyring. They are file facts
// shared with Codex: another program reading the same home finds the same
// credential.
const (
	// AuthFileName is the record's file in the home directory.
	AuthFileName = "auth.json"
	// LockFileName is the advisory lock file next to it. It is never
	// removed: removing a lock file lets two processes lock two different
	// files of the same name.
	LockFileName = "auth.json.lock"
	// KeyringService is the service name of the keyring entry.
	KeyringService = "Codex Auth"
)

// DefaultHome returns $CODEX_HOME when it is set and not empty, else
// ~/.codex. The directory need not exist.
func DefaultHome() (string, error) {
	if h := os.Getenv("CODEX_HOME"); h != "" {
		return h, nil
	}
	user, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf(
			"storage: no home directory to put .codex in (set CODEX_HOME): %w", err)
	}
	return filepath.Join(user, ".codex"), nil
}

// KeyringAccount returns the account name under which home's record lives in
// the keyring ("cli|" and 16 hex digits) — also the key of the in-memory
// ephemeral store.
//
// The digits are the start of the SHA-256 of the home path: canonical
// (absolute, symlinks resolved) when the directory exists, else the string
// exactly as given. Like Codex, it is computed afresh on every call, so a
// home that is created later, or moved, or reached through a symlink that
// changes, maps to another account. Every store of this package derives it
// the same way at the moment of each operation.
//
// TODO: so a record saved while the home did not exist yet (or before a
// symlink on its path changed) is under another account afterwards, and
// looks lost; Codex behaves the same. Creating the home before first use
// avoids it for the keyring; the in-memory entry could use a key that does
// not depend on the file system, but then it would no longer be Codex's.
func KeyringAccount(home string) string {
	sum := sha256.Sum256([]byte(lossyUTF8(canonicalHome(home))))
	return "cli|" + hex.EncodeToString(sum[:])[:16]
}

// canonicalHome resolves home to its canonical form, or returns it
// unchanged when that fails (typically because it does not exist).
func canonicalHome(home string) string {
	if home == "" {
		return home
	}
	abs, err := filepath.Abs(home)
	if err != nil {
		return home
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return home
	}
	return verbatimPath(resolved)
}

// lossyUTF8 replaces invalid UTF-8 the way Rust's String::from_utf8_lossy
// does, which is how Codex turns a path into the text it hashes: each
// maximal prefix of a would-be sequence that cannot be completed becomes
// one U+FFFD. (utf8.DecodeRuneInString would give one U+FFFD per byte
// instead, and strings.ToValidUTF8 one per run.)
func lossyUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r != utf8.RuneError || size > 1 {
			out = append(out, s[i:i+size]...)
			i += size
			continue
		}
		i += invalidPrefixLen(s[i:])
		out = utf8.AppendRune(out, utf8.RuneError)
	}
	return string(out)
}

// invalidPrefixLen returns how many bytes at the start of s form one
// invalid sequence: the lead byte plus the continuation bytes that were
// still acceptable for it (always at least 1).
func invalidPrefixLen(s string) int {
	lo, hi, need := byte(0x80), byte(0xBF), 0
	switch b := s[0]; {
	case b >= 0xC2 && b <= 0xDF:
		need = 1
	case b == 0xE0:
		lo, need = 0xA0, 2
	case b == 0xED:
		hi, need = 0x9F, 2
	case b >= 0xE1 && b <= 0xEF:
		need = 2
	case b == 0xF0:
		lo, need = 0x90, 3
	case b == 0xF4:
		hi, need = 0x8F, 3
	case b >= 0xF1 && b <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for ; n <= need && n < len(s); n++ {
		if c := s[n]; c < lo || c > hi {
			break
		}
		lo, hi = 0x80, 0xBF // only the first continuation byte is narrowed
	}
	return n
}
