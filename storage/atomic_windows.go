//go:build windows

package storage

import (
	"os"
	"path/filepath"
)

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, flushed, then renamed over path (MoveFileEx with
// MOVEFILE_REPLACE_EXISTING). renameio does not support Windows.
//
// TODO: Windows offers no directory fsync through package os, so the
// rename itself is only as durable as NTFS's journal makes it.
func writeFileAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// syncDir is a no-op on Windows; see writeFileAtomic.
func syncDir(string) error { return nil }

// checkPermissions is false on Windows: access is governed by ACLs, and
// the permission bits Go reports say nothing about who can read a file.
//
// TODO: inspect the file's ACL to warn about readable credentials here too.
const checkPermissions = false
