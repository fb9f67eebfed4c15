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
	if err := s.place(tmp.Name(), p); err != nil {
		return sluice.BlobInfo{}, "", fmt.Errorf("fsblob: %w", err)
	}
	info, err := s.Stat(ctx, dst)
	return info, sum, err
}

// composeInto writes head and the parts into tmp and returns the SHA-256
// and ETag of what it wrote. The hash reads each part (through the same open
// file the copy read) while the kernel copies the next one, so on two cores
// the merge takes the longer of the two, not their sum: hashing the output
// after the copy was half of the merge's time at 10M rows (BENCHMARKS.md).
func (s *Store) composeInto(ctx context.Context, tmp *os.File, head []byte, srcs []string) (string, string, error) {
	files := make(chan *os.File, 4)
	hashed := make(chan error, 1)
	h := sha256.New()
	var n int64
	go func() {
		h.Write(head)
		n = int64(len(head))
		var err error
		for f := range files {
			if err == nil {
				var k int64
				k, err = io.Copy(h, io.NewSectionReader(f, 0, 1<<62))
				n += k
			}
			f.Close()
		}
		hashed <- err
	}()
	written, err := s.copyParts(ctx, tmp, head, srcs, files)
	if herr := <-hashed; err == nil {
		err = herr
	}
	if err != nil {
		return "", "", err
	}
	if n != written {
		return "", "", fmt.Errorf("hashed %d bytes of the parts but wrote %d", n, written)
	}
	etag := etagOf(n, h) // Sum appends: the hash state is unchanged
	return hex.EncodeToString(h.Sum(nil)), etag, nil
}

// copyParts writes head and then each part into tmp, handing each part's
// open file to the hash once copied; it closes files when done.
func (s *Store) copyParts(ctx context.Context, tmp *os.File, head []byte, srcs []string, files chan<- *os.File) (int64, error) {
	defer close(files)
	written, err := tmp.Write(head)
	if err != nil {
		return 0, err
	}
	n := int64(written)
	for _, src := range srcs {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		r, err := s.Get(ctx, src)
		if err != nil {
			return n, err
		}
		// Both ends are *os.File (no wrapper), or Go falls back to a
		// user-space copy.
		f := r.(*os.File)
		k, err := io.Copy(tmp, f)
		n += k
		if err != nil {
			f.Close()
			return n, fmt.Errorf("%s: %w", src, err)
		}
		files <- f
	}
	return n, nil
}
