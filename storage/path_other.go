//go:build !windows

package storage

// verbatimPath returns a canonical path in the form Codex hashes. Outside
// Windows that is the path itself.
func verbatimPath(p string) string { return p }
