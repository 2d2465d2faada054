//go:build windows

package storage

import "strings"

// verbatimPath returns a canonical path in the form Codex hashes. Rust's
// canonicalize returns Windows paths with the verbatim prefix (\\?\C:\...,
// \\?\UNC\server\share\...), which filepath.EvalSymlinks leaves off.
//
// TODO: this mirrors Rust's documented behaviour but has not been checked
// against a keyring entry written by Codex on Windows.
func verbatimPath(p string) string {
	switch {
	case strings.HasPrefix(p, `\\?\`):
		return p
	case strings.HasPrefix(p, `\\`):
		return `\\?\UNC\` + p[2:]
	}
	return `\\?\` + p
}
