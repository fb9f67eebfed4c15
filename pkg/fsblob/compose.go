package fsblob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/pkg/sluice"
)

var _ sluice.Composer = (*Store)(nil)

// GetRange implements sluice.BlobStore: a section of the file, read with
// pread, so many workers share one open input without seeking.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("fsblob: range %d+%d of %q: negative", off, n, key)
	}
	r, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	f := r.(*os.File)
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	if off > st.Size() {
		f.Close()
		return nil, fmt.Errorf("fsblob: range from %d of %q, which has %d bytes", off, key, st.Size())
	}
	return sectionFile{io.NewSectionReader(f, off, n), f}, nil
}

type sectionFile struct {
	*io.SectionReader
	f *os.File
}

func (s sectionFile) Close() error { return s.f.Close() }

// Compose implements sluice.Composer. The parts are copied file to file
// with io.Copy, which Go turns into copy_file_range: the kernel moves the
// bytes (or shares extents, on file systems with reflinks) and none pass
// through this process. The ETag still needs the content's hash, so each
// part is hashed from the page cache it was just written from.
func (s *Store) Compose(ctx context.Context, dst string, head []byte, srcs []string) (sluice.BlobInfo, string, error) {
	p, err := s.Path(dst)
	if err != nil {
		return sluice.BlobInfo{}, "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return sluice.BlobInfo{}, "", fmt.Errorf("fsblob: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), tmpPrefix+"*")
	if err != nil {
		return sluice.BlobInfo{}, "", fmt.Errorf("fsblob: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	sum, etag, err := s.composeInto(ctx, tmp, head, srcs)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return sluice.BlobInfo{}, "", fmt.Errorf("fsblob: composing %q: %w", dst, err)
	}
	if err := os.Chmod(tmp.Name(), FileMode); err != nil {
		return sluice.BlobInfo{}, "", fmt.Errorf("fsblob: %w", err)
	}
	setETag(tmp.Name(), etag)
	if err := os.Rename(tmp.Name(), p); err != nil {
		return sluice.BlobInfo{}, "", fmt.Errorf("fsblob: %w", err)
	}
	info, err := s.Stat(ctx, dst)
	return info, sum, err
}

// composeInto writes head and the parts into tmp and returns the size and
// ETag of what it wrote.
func (s *Store) composeInto(ctx context.Context, tmp *os.File, head []byte, srcs []string) (string, string, error) {
	if _, err := tmp.Write(head); err != nil {
		return "", "", err
	}
	for _, src := range srcs {
		if err := ctx.Err(); err != nil {
			return "", "", err
		}
		r, err := s.Get(ctx, src)
		if err != nil {
			return "", "", err
		}
		// Both ends are *os.File (no wrapper), or Go falls back to a
		// user-space copy.
		_, err = io.Copy(tmp, r.(*os.File))
		r.Close()
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", src, err)
		}
	}
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(tmp, 0, 1<<62))
	if err != nil {
		return "", "", err
	}
	etag := etagOf(n, h) // Sum appends: the hash state is unchanged
	return hex.EncodeToString(h.Sum(nil)), etag, nil
}
