// Package fsblob is a sluice.BlobStore on a local directory: the directory
// is the bucket, a key is a relative path inside it. Writes go to a temporary
// file in the same directory and are renamed into place, so a reader never
// sees half an object, and a crash leaves either the old or the new one.
package fsblob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// tmpPrefix starts the names of the files this process is writing:
// TempPrefix (which marks every file being written: List never shows them,
// no key may use it) and a token of this process, so that the sweep of
// what dead processes left can run beside this one's writes (SweepDead;
// the process's marker, live.go, says it is alive).
var tmpPrefix = TempPrefix + token + "-"

// processToken is 8 random hex digits: a process ID could be a dead
// process's again.
func processToken() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Store is a bucket in a directory.
type Store struct {
	name   string
	root   string
	closed sync.Once
}

var _ sluice.BlobStore = (*Store)(nil)

// New opens (and creates) the bucket at dir. The bucket's name is the
// directory's base name.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	if err := holdLive(abs); err != nil {
		return nil, err
	}
	return &Store{name: filepath.Base(abs), root: abs}, nil
}

// Close lets go of the store's share of this process's marker in the
// bucket: once the last is closed, another process's sweep takes what
// this one's writes left as dead. Writes must have ended.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() { err = releaseLive(s.root) })
	return err
}

// Bucket implements sluice.BlobStore.
func (s *Store) Bucket() string { return s.name }

// Root is the bucket's directory.
func (s *Store) Root() string { return s.root }

// Path returns the file that holds key.
func (s *Store) Path(key string) (string, error) {
	if err := sluice.ValidateKey(key); err != nil {
		return "", err
	}
	if strings.HasSuffix(key, "/") {
		return "", fmt.Errorf("%w: %q ends with /", sluice.ErrInvalidKey, key)
	}
	for _, seg := range strings.Split(key, "/") {
		if strings.HasPrefix(seg, TempPrefix) {
			return "", fmt.Errorf("%w: %q uses a reserved name", sluice.ErrInvalidKey, key)
		}
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

func notFound(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("object %q: %w", key, sluice.ErrNotFound)
	}
	return err
}

// Get implements sluice.BlobStore.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.Path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, notFound(key, err)
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("object %q: %w", key, sluice.ErrNotFound)
	}
	return f, nil
}

// FileMode is the mode of every file Sluice writes for people to read:
// objects in the bucket (outputs, error reports, manifests) and emails.
const FileMode = 0o644

// Put implements sluice.BlobStore.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (sluice.BlobInfo, error) {
	if err := s.put(ctx, key, r, true); err != nil {
		return sluice.BlobInfo{}, err
	}
	return s.Stat(ctx, key)
}

// PutScratch stores r under key as Put does, atomically, but without the
// content hash: for objects only the pipeline itself reads back (a chunk's
// output and error parts), whose ETag nobody compares. Hashing them cost
// as much CPU as writing them, for every byte of every output
// (BENCHMARKS.md). Stat gives such an object the weak ETag of its size and
// modification time.
func (s *Store) PutScratch(ctx context.Context, key string, r io.Reader) error {
	return s.put(ctx, key, r, false)
}

func (s *Store) put(ctx context.Context, key string, r io.Reader, hashed bool) error {
	p, err := s.Path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	// CreateTemp makes the file 0600; an object is as readable as the
	// files a person copies out of the bucket would be.
	if err := tmp.Chmod(FileMode); err != nil {
		tmp.Close()
		return fmt.Errorf("fsblob: %w", err)
	}
	var w io.Writer = tmp
	h := sha256.New()
	if hashed {
		w = io.MultiWriter(tmp, h)
	}
	n, err := io.Copy(w, ctxReader{ctx, r})
	if err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err != nil {
		return fmt.Errorf("fsblob: writing %q: %w", key, err)
	}
	if hashed {
		// The ETag travels with the file as an extended attribute where the file
		// system has them; otherwise Stat derives a weaker one from size and time.
		setETag(tmp.Name(), etagOf(n, h))
	}
	if err := s.place(tmp.Name(), p); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	return nil
}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// etagOf is the local stand-in for S3's ETag: the content's SHA-256 and
// its size. Resume and de-duplication trust it as the file's identity, so it
// must be collision-resistant: a CRC (what this was once) can be forged
// with four appended bytes, and a forged file was then "resumed" and given
// another file's output. SHA-256 costs ~1.5 GB/s with SHA-NI, far below
// what the split reads.
func etagOf(size int64, h hash.Hash) string {
	return "sha256-" + hex.EncodeToString(h.Sum(nil)) + "-" + strconv.FormatInt(size, 16)
}

// ETagOfFile computes the ETag Put would give the file at path, so the CLI
// can recognise a file it already submitted.
func ETagOfFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	// hashRead at a time: io.Copy's 32 KiB would be a read per 32 KiB.
	n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, make([]byte, hashRead))
	if err != nil {
		return "", 0, err
	}
	return etagOf(n, h), n, nil
}

const xattrName = "user.sluice.etag"

func setETag(path, etag string) { _ = setxattr(path, xattrName, []byte(etag)) }

func (s *Store) info(key, p string, st fs.FileInfo) sluice.BlobInfo {
	b, err := getxattr(p, xattrName)
	return infoOf(key, st, b, err)
}

// infoOf describes a file from its stat and its ETag attribute (xa, read
// with error xerr): without one, the ETag is the weak one of its size and
// modification time.
func infoOf(key string, st fs.FileInfo, xa []byte, xerr error) sluice.BlobInfo {
	etag := ""
	if xerr == nil && len(xa) > 0 {
		etag = string(xa)
	} else {
		etag = "w-" + strconv.FormatInt(st.ModTime().UnixNano(), 16) + "-" + strconv.FormatInt(st.Size(), 16)
	}
	return sluice.BlobInfo{Key: key, Size: st.Size(), ETag: etag, Modified: st.ModTime()}
}

// Stat implements sluice.BlobStore.
func (s *Store) Stat(ctx context.Context, key string) (sluice.BlobInfo, error) {
	p, err := s.Path(key)
	if err != nil {
		return sluice.BlobInfo{}, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return sluice.BlobInfo{}, notFound(key, err)
	}
	if st.IsDir() {
		return sluice.BlobInfo{}, fmt.Errorf("object %q: %w", key, sluice.ErrNotFound)
	}
	return s.info(key, p, st), nil
}

// List implements sluice.BlobStore.
func (s *Store) List(ctx context.Context, prefix string) ([]sluice.BlobInfo, error) {
	// Walk only the deepest directory the prefix names completely.
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		if err := sluice.ValidateKey(prefix[:i+1] + "x"); err != nil {
			return nil, err
		}
		start = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	var out []sluice.BlobInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), TempPrefix) {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		out = append(out, s.info(key, p, st))
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("fsblob: listing %q: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Copy implements sluice.BlobStore. Objects are never changed in place
// (Put always renames a new file over the old), so a copy can share the
// file: a hard link under a temporary name, renamed into place. Where links
// are not possible it copies the bytes.
func (s *Store) Copy(ctx context.Context, src, dst string) error {
	sp, err := s.Path(src)
	if err != nil {
		return err
	}
	dp, err := s.Path(dst)
	if err != nil {
		return err
	}
	if _, err := os.Stat(sp); err != nil {
		return notFound(src, err)
	}
	if err := os.MkdirAll(filepath.Dir(dp), 0o755); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	tmp := linkTempName(filepath.Dir(dp))
	if err := os.Link(sp, tmp); err == nil {
		// Removed whatever happens: a rename onto another link of the
		// same file (a copy made again) does nothing and leaves tmp.
		defer os.Remove(tmp)
		if err := s.place(tmp, dp); err != nil {
			return fmt.Errorf("fsblob: %w", err)
		}
		return nil
	}
	r, err := s.Get(ctx, src)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = s.Put(ctx, dst, r)
	return err
}

// Delete implements sluice.BlobStore.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.Path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fsblob: %w", err)
	}
	return nil
}

// Link implements sluice.BlobStore: a file URL, which never expires.
func (s *Store) Link(ctx context.Context, key string, ttl time.Duration) (string, time.Time, error) {
	p, err := s.Path(key)
	if err != nil {
		return "", time.Time{}, err
	}
	if _, err := os.Stat(p); err != nil {
		return "", time.Time{}, notFound(key, err)
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(p)}).String(), time.Time{}, nil
}
