package fsblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// The conditional calls of the port (GetRangeIf, CopyIf, DeleteIf). S3
// checks an If-Match and acts in one request; here the check is made on
// an open file or a private link, so what is read or copied is the very
// file whose ETag matched, whatever the key names by then. Objects are
// never changed in place (every write renames a new file over the key),
// so a file's bytes stay those its ETag names.

// placeMu orders the renames that put an object under its key (read
// side: any number at once) against DeleteIf's check-then-remove (write
// side). POSIX has no "unlink if this is still that file", so this is what
// makes DeleteIf atomic against every write made through this package in
// this process: the embedded engine, the one process that writes its data
// directory (it holds the directory's lock). A program writing into the
// directory behind Sluice's back is not covered.
var placeMu sync.RWMutex

// place renames a finished temporary file onto its key's path.
func place(tmp, p string) error {
	placeMu.RLock()
	defer placeMu.RUnlock()
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
	tmp := filepath.Join(filepath.Dir(dp), tmpPrefix+"link-"+strconv.FormatInt(time.Now().UnixNano(), 36))
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
	if err := place(tmp, dp); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	return nil
}

// copyOpen is CopyIf by reading: the ETag is checked on the open source,
// which is then read from its start.
func (s *Store) copyOpen(ctx context.Context, src, sp, dst, etag string) error {
	f, err := os.Open(sp)
	if err != nil {
		return notFound(src, err)
	}
	defer f.Close()
	if err := checkETag(src, f, etag); err != nil {
		return err
	}
	return s.put(ctx, dst, f, true)
}

// DeleteIf implements sluice.BlobStore: the check and the removal are
// made under placeMu, so no write of this process lands between them.
func (s *Store) DeleteIf(ctx context.Context, key, etag string) error {
	p, err := s.Path(key)
	if err != nil {
		return err
	}
	placeMu.Lock()
	defer placeMu.Unlock()
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
