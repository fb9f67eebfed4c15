package fsblob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// The conditional calls of the port (GetRangeIf, CopyIf, DeleteIf). S3
// checks an If-Match and acts in one request; here the check is made on
// an open file or a private link, so what is read or copied is the very
// file whose ETag matched, whatever the key names by then. Objects are
// never changed in place (every write renames a new file over the key),
// so a file's bytes stay those its ETag names.

// placeMu orders, in this process, the renames that put an object under
// its key (read side: any number at once) against DeleteIf's
// check-then-remove (write side); the place lock (placeLockName, flocked
// by every such rename shared and by DeleteIf exclusive) does the same
// across the processes that share a data directory: with
// SLUICE_BACKEND=local five service processes and the chaos driver write
// one bucket. POSIX has no "unlink if this is still that file", so this is
// what makes DeleteIf atomic against every write made through this
// package, in any process. A program writing into the directory behind
// Sluice's back is not covered. Without flock (non-Unix) only placeMu.
var placeMu sync.RWMutex

// placeLockName is the bucket's place lock, in its root. It is under
// TempPrefix so that List never shows it and no key can name it; the
// sweeps skip it (isLockFile).
const placeLockName = TempPrefix + "place.lock"

// place renames a finished temporary file onto its key's path, holding
// the place lock shared so that no DeleteIf's check and removal straddle
// it.
func (s *Store) place(tmp, p string) error {
	placeMu.RLock()
	defer placeMu.RUnlock()
	l, err := lockPlace(filepath.Join(s.root, placeLockName), false)
	if err != nil {
		return err
	}
	if l != nil {
		defer l.Close() // closing lets go of the flock
	}
	return os.Rename(tmp, p)
}

// checkETag fails unless the open file f (the object key) has ETag etag.
func checkETag(key string, f *os.File, etag string) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	if st.IsDir() {
		return fmt.Errorf("object %q: %w", key, sluice.ErrNotFound)
	}
	xa, xerr := fgetxattr(f, xattrName)
	if got := infoOf(key, st, xa, xerr).ETag; got != etag {
		return fmt.Errorf("fsblob: %q has ETag %s, not %s: %w", key, got, etag, sluice.ErrETagMismatch)
	}
	return nil
}

// GetIf implements sluice.BlobStore: the ETag is checked on the file Get
// opened, so the bytes read are that file's.
func (s *Store) GetIf(ctx context.Context, key, etag string) (io.ReadCloser, error) {
	r, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	f := r.(*os.File)
	if err := checkETag(key, f, etag); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// GetRangeIf implements sluice.BlobStore: the ETag is checked on the file
// GetRange opened, so the range is read from that file.
func (s *Store) GetRangeIf(ctx context.Context, key, etag string, off, n int64) (io.ReadCloser, error) {
	r, err := s.GetRange(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	sf := r.(sectionFile)
	if err := checkETag(key, sf.f, etag); err != nil {
		sf.Close()
		return nil, err
	}
	return sf, nil
}

// CopyIf implements sluice.BlobStore. The source is hard-linked under a
// temporary name only this call knows, and that link is checked: it is a
// fixed file, so the copy renamed into place is the file whose ETag
// matched. A link shares the file and its ETag attribute, so the copy has
// the source's ETag (CopyOf stays empty). Where links are not possible the
// checked, open file is copied.
func (s *Store) CopyIf(ctx context.Context, src, dst, etag string) error {
	sp, err := s.Path(src)
	if err != nil {
		return err
	}
	dp, err := s.Path(dst)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dp), 0o755); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	tmp := linkTempName(filepath.Dir(dp))
	if err := os.Link(sp, tmp); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return notFound(src, err)
		}
		return s.copyOpen(ctx, src, sp, dst, etag)
	}
	defer os.Remove(tmp) // a no-op once renamed
	f, err := os.Open(tmp)
	if err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	err = checkETag(src, f, etag)
	f.Close()
	if err != nil {
		return err
	}
	if err := s.place(tmp, dp); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	return nil
}

// copyOpen is CopyIf by reading (where os.Link fails: another device, no
// hard links): the ETag is checked on the open source, which is then read
// from its start. The copy is given the checked ETag, as an attribute and,
// for the weak ETag of size and time where there are no attributes, the
// source's modification time, so that it reports the source's ETag as a
// link would (the port's contract: IsCopyOf). Its bytes are not hashed
// again: they are the checked file's.
func (s *Store) copyOpen(ctx context.Context, src, sp, dst, etag string) error {
	f, err := os.Open(sp)
	if err != nil {
		return notFound(src, err)
	}
	defer f.Close()
	if err := checkETag(src, f, etag); err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	dp, err := s.Path(dst)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dp), 0o755); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dp), tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	_, err = io.Copy(tmp, ctxReader{ctx, f})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), FileMode)
	}
	if err != nil {
		return fmt.Errorf("fsblob: copying %q to %q: %w", src, dst, err)
	}
	setETag(tmp.Name(), etag)
	if err := os.Chtimes(tmp.Name(), st.ModTime(), st.ModTime()); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	if err := s.place(tmp.Name(), dp); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	return nil
}

// linkTempName is a temporary name in dir for a hard link: random, so
// that two copies made at once (in this process or another) never collide.
func linkTempName(dir string) string {
	var b [8]byte
	rand.Read(b[:])
	return filepath.Join(dir, tmpPrefix+"link-"+hex.EncodeToString(b[:]))
}

// DeleteIf implements sluice.BlobStore: the check and the removal are
// made under placeMu and the place lock held exclusive, so no write made
// through this package, by this process or another sharing the data
// directory, lands between them.
func (s *Store) DeleteIf(ctx context.Context, key, etag string) error {
	p, err := s.Path(key)
	if err != nil {
		return err
	}
	placeMu.Lock()
	defer placeMu.Unlock()
	l, err := lockPlace(filepath.Join(s.root, placeLockName), true)
	if err != nil {
		return err
	}
	if l != nil {
		defer l.Close()
	}
	f, err := os.Open(p)
	if err != nil {
		return notFound(key, err)
	}
	err = checkETag(key, f, etag)
	f.Close()
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return notFound(key, err)
		}
		return fmt.Errorf("fsblob: %w", err)
	}
	return nil
}

// isLockFile tells the files under TempPrefix that are no temporary
// files, which the sweeps must leave: the process markers (live.go) and
// the place lock.
func isLockFile(name string) bool {
	return strings.HasPrefix(name, livePrefix) || name == placeLockName
}
