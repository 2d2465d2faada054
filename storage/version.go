package storage

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/credfsm/credfsm/states"
)

// versionOf names stored bytes: the SHA-256 of exactly what the backend
// holds, in hex, or states.NoVersion when it holds nothing.
//
// A content hash needs no counter kept anywhere, survives restarts and is
// the same in every process. Two equal versions mean byte-identical records,
// so a compare-and-swap that sees "the same" version after an A→B→A change
// loses nothing: the record really is what the caller read.
func versionOf(data []byte, found bool) states.Version {
	if !found {
		return states.NoVersion
	}
	sum := sha256.Sum256(data)
	return states.Version(hex.EncodeToString(sum[:]))
}

// checkVersion is the compare half of every compare-and-swap save.
func checkVersion(current snapshot, expected states.Version) error {
	if expected == states.AnyVersion {
		return nil
	}
	if v := current.version(); v != expected {
		return &ConflictError{Path: current.where, Expected: expected, Found: v}
	}
	return nil
}
