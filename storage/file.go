package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/credfsm/credfsm/states"
)

// File keeps the record in <home>/auth.json, Codex's default store.
//
// Every save replaces the file atomically (see writeFileAtomic) with a
// 0600 one, and takes group and other permissions off the home directory
// (created 0700 when missing; see ensureDir for what is never changed). A
// file that other users can read still loads, but the store logs a warning
// once and says so in Info.
//
// auth.json may be a symbolic link, as it may for Codex, which reads and
// writes through it. Load reads the file it leads to; a link to nothing
// is the empty store. Save replaces the file it leads to (creating it for
// a link to nothing, when its directory exists) and keeps the link; the
// compare is against that same file. Delete removes the link, not the
// file it leads to (see File.remove), and its Removal names that file
// (see LeftInPlace).
//
// TODO: the lock file stays next to the link, so two homes whose auth.json
// link to one file do not exclude each other's refreshes; the
// compare-and-swap still keeps either from overwriting the other's save.
//
// Save is a compare-and-swap against the version read before. It does not
// take the lock: a caller that reads, decides and saves across processes
// holds Lock around all three.
type File struct {
	home   string
	path   string
	logger *slog.Logger

	mu     sync.Mutex
	warned bool   // the loose-permission warning was logged
	note   string // what Info reports about the file's permissions
}

// NewFile returns the file store of home. Nothing is touched until the first
// call. A nil logger discards.
func NewFile(home string, logger *slog.Logger) *File {
	return &File{
		home:   home,
		path:   filepath.Join(home, AuthFileName),
		logger: orDiscard(logger),
	}
}

// Path returns the file the record is kept in.
func (f *File) Path() string { return f.path }

// Load reads and parses the file. A missing file is the empty store
// (zero Record, states.NoVersion). An unreadable one returns a *LoadError
// together with the version of what is there, so a caller can replace
// exactly that content.
func (f *File) Load(ctx context.Context) (states.Record, states.Version, error) {
	snap, err := f.snapshot(ctx)
	if err != nil {
		return states.Record{}, states.NoVersion, err
	}
	return snap.parse()
}

// Save writes rec if the file still holds the expected version and returns
// the new one. Unknown members of the record it replaces are kept.
func (f *File) Save(ctx context.Context, rec states.Record,
	expected states.Version) (states.Version, error) {
	return saveCAS(ctx, f.home, f, rec, expected)
}

// Delete removes the file (and any temporary file a crashed save left
// behind, since it holds tokens too).
func (f *File) Delete(ctx context.Context) ([]states.Removal, error) {
	return deleteLocked(ctx, f.home, f)
}

// Lock takes the cross-process lock of the home directory (see lockHome),
// then makes sure a save could write where auth.json lives. The lock is
// taken before a refresh token is redeemed, and a provider that rotates
// retires the old token as it answers: a save that finds the directory
// read-only only afterwards would lose the new tokens for good. So Lock
// fails instead, with an error wrapping the system's (fs.ErrPermission, or
// a read-only file system), and nothing is redeemed.
func (f *File) Lock(ctx context.Context) (func() error, error) {
	unlock, err := lockHome(ctx, f.home)
	if err != nil {
		return nil, err
	}
	if err := f.checkWritable(); err != nil {
		_ = unlock()
		return nil, err
	}
	return unlock, nil
}

// checkWritable creates and removes an empty file where a save creates its
// temporary one: next to auth.json, or next to the file a link there leads
// to. A link that cannot be followed is left for the save to report. The
// name is one tidyTempFiles removes, should a crash leave it behind.
func (f *File) checkWritable() error {
	target, err := resolveLink(f.path)
	if err != nil {
		return nil
	}
	dir := filepath.Dir(target)
	probe, err := createTemp(dir, "."+filepath.Base(target)+"*")
	if err != nil {
		return fmt.Errorf("storage: cannot write in %s, so new tokens could not be saved "+
			"there; nothing was sent to the token endpoint: %w", dir, err)
	}
	name := probe.Name()
	_ = probe.Close()
	return os.Remove(name)
}

// createTemp is os.CreateTemp; tests replace it to play a directory that
// cannot be written, which permissions cannot do for root.
var createTemp = os.CreateTemp

// Info describes the store.
func (f *File) Info() states.StoreInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return states.StoreInfo{Kind: ModeFile.String(), Location: f.path, Note: f.note}
}

// snapshot reads the file's bytes without parsing them.
func (f *File) snapshot(ctx context.Context) (snapshot, error) {
	if err := ctx.Err(); err != nil {
		return snapshot{}, err
	}
	return f.read()
}

// read returns the file's content; found is false when there is no file.
// At most maxRecordSize+1 bytes are kept (one more than a record can be, so
// the parser can tell), but the version and the size cover the whole file.
func (f *File) read() (snapshot, error) {
	snap := snapshot{where: f.path}
	name := f.path
	if target, err := resolveLink(f.path); err == nil {
		name, snap.target = target, target
	}
	// Otherwise (a link into a missing directory, a loop) the open below
	// finds no file or fails with the system's reason, and a save finds
	// out again why it cannot write.
	//
	// Opening a named pipe or a device for reading can block until someone
	// writes to it, so anything but a regular file is refused unopened.
	// (Put there between this check and the open, it is still caught by the
	// check after the open, once the open returns.)
	if fi, err := os.Stat(name); err == nil && !fi.Mode().IsRegular() {
		return snap, &LoadError{Path: f.path, Problem: "not a regular file"}
	}
	fh, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return snap, nil
	}
	if err != nil {
		return snap, f.readError(err)
	}
	defer fh.Close()

	fi, err := fh.Stat()
	if err != nil {
		return snap, f.readError(err)
	}
	if !fi.Mode().IsRegular() {
		return snap, &LoadError{Path: f.path, Problem: "not a regular file"}
	}
	f.observe(fi.Mode().Perm())

	h := sha256.New()
	data, err := io.ReadAll(io.TeeReader(io.LimitReader(fh, maxRecordSize+1), h))
	if err == nil && len(data) > maxRecordSize {
		var rest int64
		rest, err = io.Copy(h, fh)
		snap.digest = states.Version(hex.EncodeToString(h.Sum(nil)))
		snap.size = int64(len(data)) + rest
	}
	if err != nil {
		return snap, f.readError(err)
	}
	snap.data, snap.found = data, true
	return snap, nil
}

// readError wraps an I/O error. The os package's messages carry the path
// and the system's reason, never file content.
func (f *File) readError(err error) error {
	var pe *fs.PathError
	problem := err.Error()
	if errors.As(err, &pe) {
		problem = pe.Op + ": " + pe.Err.Error()
	}
	return &LoadError{Path: f.path, Problem: problem, Err: err}
}

// observe records whether the file is readable by others: a warning in
// the log the first time, a note in Info for as long as it lasts.
func (f *File) observe(perm fs.FileMode) {
	if !checkPermissions {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if perm&0o077 == 0 {
		f.note = ""
		return
	}
	f.note = fmt.Sprintf("%s is readable by other users (mode %#o); "+
		"the next save makes it 0600", f.path, perm)
	if !f.warned {
		f.warned = true
		f.logger.Warn("storage: credential file is readable by other users",
			"path", f.path, "mode", fmt.Sprintf("%#o", perm))
	}
}

// write replaces the stored record; the caller has done the compare, on
// prev when it is this store's snapshot.
func (f *File) write(_ context.Context, rec states.Record, prev snapshot,
	keep document) (states.Version, error) {
	data, err := encodeDocument(rec, keep, true)
	if err != nil {
		return states.NoVersion, err
	}
	target := prev.target
	if target == "" {
		if target, err = resolveLink(f.path); err != nil {
			return states.NoVersion, linkError(f.path, err)
		}
	}
	if err := f.writeBytes(data, target); err != nil {
		return states.NoVersion, err
	}
	return versionOf(data, true), nil
}

// writeBytes creates the home directory if needed, takes group and other
// permissions off it (ensureDir) and replaces target — auth.json, or the
// file a symbolic link there leads to — atomically with a 0600 file. The
// directory of a link's target is left as it is.
func (f *File) writeBytes(data []byte, target string) error {
	if err := ensureDir(f.home); err != nil {
		return err
	}
	tidyTempFiles(f.home, AuthFileName, staleTempAge)
	if target != f.path {
		tidyTempFiles(filepath.Dir(target), filepath.Base(target), staleTempAge)
	}
	if err := writeFileAtomic(target, data); err != nil {
		if target != f.path {
			return fmt.Errorf("storage: cannot write %s (through the symbolic link %s): %w",
				target, f.path, err)
		}
		return fmt.Errorf("storage: cannot write %s: %w", f.path, err)
	}
	f.mu.Lock()
	f.note = "" // the new file is 0600
	f.mu.Unlock()
	return nil
}

// clear removes the file and leftover temporary files. When auth.json was
// a symbolic link, the Removal says which file was left in place (see
// LeftInPlace).
func (f *File) clear(context.Context) ([]states.Removal, error) {
	removed, kept, err := f.remove()
	r := states.Removal{Backend: fileBackend(f.path, kept), Removed: removed, Err: err}
	return []states.Removal{r}, err
}

// The Removal of a symbolic link auth.json whose target was left in place
// names both: "file <link> (a symbolic link to <target>, which was left in
// place)". A Removal has no field for the target, and a caller that only
// prints Backend should still tell its user; LeftInPlace gives it back to
// a caller that wants to say more.
const (
	fileBackendPrefix = "file "
	keptTargetOpen    = " (a symbolic link to "
	keptTargetClose   = ", which was left in place)"
)

// fileBackend is how a Removal names the file store at path; kept is the
// file a symbolic link there led to and that was left in place, if any.
func fileBackend(path, kept string) string {
	if kept == "" {
		return fileBackendPrefix + path
	}
	return fileBackendPrefix + path + keptTargetOpen + kept + keptTargetClose
}

// LeftInPlace returns the file that deleting the credential left in place
// because auth.json was a symbolic link to it (see File), and reports
// whether r is such a removal. That file may still hold a working
// credential: a caller should tell its user, who decides whether to delete
// it.
func LeftInPlace(r states.Removal) (target string, ok bool) {
	rest, ok := strings.CutPrefix(r.Backend, fileBackendPrefix)
	if !ok {
		return "", false
	}
	rest, ok = strings.CutSuffix(rest, keptTargetClose)
	if !ok {
		return "", false
	}
	i := strings.LastIndex(rest, keptTargetOpen)
	if i < 0 {
		return "", false
	}
	return rest[i+len(keptTargetOpen):], true
}

// remove deletes the file; removed is false when there was none.
//
// When auth.json is a symbolic link, remove deletes the link and leaves
// the file it leads to in place, as Codex's logout (which removes the path
// auth.json) does: that file may be another program's, or shared with
// one. Load then finds nothing, and the next save writes a regular
// auth.json. Since the file left behind may still hold a credential, it is
// returned as kept (when it exists) and a warning naming it is logged;
// temporary files that saves through the link left next to it are
// removed, as they are ours.
func (f *File) remove() (removed bool, kept string, err error) {
	tidyTempFiles(f.home, AuthFileName, 0)
	target, terr := resolveLink(f.path)
	linked := terr == nil && target != f.path
	if linked {
		tidyTempFiles(filepath.Dir(target), filepath.Base(target), 0)
	}
	err = os.Remove(f.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, "", nil
	case err != nil:
		return false, "", fmt.Errorf("storage: cannot remove %s: %w", f.path, err)
	}
	if err := syncDir(f.home); err != nil {
		// The file is gone for every reader; only its durability across
		// a power cut is in doubt, so this is reported, not failed.
		f.logger.Warn("storage: cannot flush the directory after removing the credential file",
			"path", f.path, "err", err)
	}
	if linked {
		if _, err := os.Lstat(target); err == nil {
			kept = target
			f.logger.Warn("storage: removed the symbolic link to the credential file; "+
				"the file it led to is left in place and may still hold a credential",
				"path", f.path, "target", target)
		}
	}
	f.mu.Lock()
	f.note = ""
	f.mu.Unlock()
	return true, kept, nil
}

// ensureDir creates dir (0700) if it is missing and takes every group and
// other permission away from it if it has any: a credential directory is
// nobody else's business.
//
// It never grants: the owner's own bits of an existing directory stay as
// they are. A home the owner made read-only (0500) stays read-only, and a
// save into it fails with a permission error instead of quietly making it
// writable again. Only a directory created here is set to exactly 0700,
// whatever the umask took from it.
//
// A chmod that fails — the directory is another user's, say — fails with
// an error wrapping the system's, so errors.Is(err, fs.ErrPermission)
// tells the caller that trying again will not help.
func ensureDir(dir string) error {
	_, err := os.Stat(dir)
	created := errors.Is(err, fs.ErrNotExist)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("storage: cannot create %s: %w", dir, err)
	}
	if !checkPermissions {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("storage: cannot inspect %s: %w", dir, err)
	}
	perm := fi.Mode().Perm()
	want := perm &^ 0o077
	if created {
		want = 0o700
	}
	if perm != want {
		if err := chmod(dir, want); err != nil {
			return fmt.Errorf("storage: cannot make %s private (mode %#o): %w", dir, want, err)
		}
	}
	return nil
}

// orDiscard returns l, or a logger that drops everything when l is nil.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// chmod is os.Chmod; tests replace it to stand for a directory whose mode
// this user may not change.
var chmod = os.Chmod
