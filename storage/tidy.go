package storage

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// staleTempAge is how old a temporary file must be before a save removes
// it. A save takes milliseconds, so anything this old was left by a process
// that died between creating and renaming it.
const staleTempAge = time.Minute

// tidyTempFiles removes temporary files that an interrupted save left next
// to base in dir: "." + base + digits, the names the atomic writers use.
// They hold tokens, so a logout (olderThan 0) removes all of them and a save
// the stale ones. Errors are ignored: the files are 0600 in a 0700
// directory, and the next save or logout tries again.
func tidyTempFiles(dir, base string, olderThan time.Duration) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := "." + base
	for _, e := range entries {
		name := e.Name()
		digits, ok := strings.CutPrefix(name, prefix)
		numbered := ok && digits != "" && strings.Trim(digits, "0123456789") == ""
		if !numbered || !e.Type().IsRegular() {
			continue
		}
		if olderThan > 0 {
			fi, err := e.Info()
			if err != nil || time.Since(fi.ModTime()) < olderThan {
				continue
			}
		}
		_ = os.Remove(filepath.Join(dir, name))
	}
}
