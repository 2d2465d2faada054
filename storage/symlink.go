package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxLinkHops bounds how many symbolic links resolveLink follows, like the
// kernel's own limit (40 on Linux), so that a loop ends in an error.
const maxLinkHops = 40

// errLinkLoop is the cause when resolveLink gives up after maxLinkHops.
var errLinkLoop = errors.New("too many levels of symbolic links")

// resolveLink returns the file that a write to path must replace: path
// itself when it is not a symbolic link (or does not exist), else the file
// at the end of the chain of links, which need not exist (a dangling link
// names the file a write creates) but whose directory must.
//
// Replacing a file atomically means renaming a temporary file over it, and
// a rename over a link replaces the link. To write through the link, as
// Codex does with its open-and-truncate, the rename has to go to the
// target, with the temporary file in the target's directory. The
// directories on the way are resolved before a relative link is applied,
// as the kernel does: "../x" in a link is relative to the directory the
// link is really in, even when that was reached through another link.
func resolveLink(path string) (string, error) {
	for range maxLinkHops {
		fi, err := os.Lstat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return path, nil
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink == 0:
			return path, nil
		}
		dest, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(dest) {
			dir, err := filepath.EvalSymlinks(filepath.Dir(path))
			if err != nil {
				return "", err
			}
			// Not filepath.Join: it would clean "sub/../x" to "x" before
			// sub, perhaps a link, is resolved.
			dest = dir + string(filepath.Separator) + dest
		}
		if path, err = resolveParent(dest); err != nil {
			return "", err
		}
	}
	return "", &fs.PathError{Op: "resolve", Path: path, Err: errLinkLoop}
}

// resolveParent returns path with its directory resolved (symbolic links
// followed, "." and ".." applied) and its last element as it is. The
// directory must exist; the last element must name a file.
func resolveParent(path string) (string, error) {
	i := strings.LastIndexFunc(path, func(r rune) bool {
		return r < 0x80 && os.IsPathSeparator(uint8(r))
	})
	dir, base := path[:i+1], path[i+1:]
	if base == "" || base == "." || base == ".." {
		return "", &fs.PathError{Op: "resolve", Path: path,
			Err: errors.New("a symbolic link leads to a directory, not a file")}
	}
	if dir == "" {
		dir = "."
	}
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	return filepath.Join(resolved, base), nil
}

// linkError describes a failure to resolve the symbolic link auth.json for
// a write. The cause names paths and the system's reason, never content.
func linkError(link string, err error) error {
	dest, rerr := os.Readlink(link)
	if rerr != nil {
		return fmt.Errorf("storage: cannot write %s: cannot follow the symbolic link: %w",
			link, err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: cannot write %s: it is a symbolic link to %s, "+
			"and the directory that file would be in does not exist: %w", link, dest, err)
	}
	return fmt.Errorf("storage: cannot write %s: it is a symbolic link to %s, "+
		"which cannot be followed to a file to write: %w", link, dest, err)
}
