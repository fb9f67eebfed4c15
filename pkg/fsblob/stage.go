package fsblob

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Staged is a local file copied into the store under a temporary name: its
// ETag is known, but no key shows it until Publish.
type Staged struct {
	s    *Store
	key  string
	tmp  string
	ETag string
	Size int64
}

// ErrChanged is StageFile's error when the file was written to while it
// was being copied.
var ErrChanged = fmt.Errorf("fsblob: the file changed while it was being copied")

// errOpenForWriting is StageFile's error when another descriptor has the
// file open for writing: its bytes may change at any moment, and a copy
// could hold half of a write. It is an ErrChanged.
var errOpenForWriting = fmt.Errorf("%w: it is open for writing (by this or another program); stage it once it is written and closed", ErrChanged)

// stageStep is how much StageFile copies between checks of the context.
const stageStep = 64 << 20

// StageFile copies the file at path next to key, ready to be published
// under it. Put would read the file through this process and hash it on
// the way, and the caller had already read it once to know its ETag. Here
// the kernel copies it (copy_file_range: no bytes through this process, or
// none at all where the file system shares extents), and the ETag is the
// hash of the copy itself, so it names exactly what will be stored.
//
// A write to the file during the copy must not give a torn copy (part old,
// part new bytes) that passes for the file. On Linux the copy holds a read
// lease (readLease): granted only while nothing has the file open for
// writing, and holding off new writers while it is held, so the bytes
// cannot change under the copy; a file open for writing is refused at
// once. Where no lease can be had (a file this user does not own, another
// OS or file system), size and modification time are compared before and
// after, which is proof only if the time had to move: the kernel stamps a
// write with a coarse clock when the write starts, so the copy then starts
// only once the file's time is older than quietFor, and a file written
// within quietFor is waited for once; if it changed meanwhile, it is being
// written: ErrChanged. That fallback cannot see a write that started before
// the copy and is still going on (its writer descheduled): only the lease
// can.
func (s *Store) StageFile(ctx context.Context, key, path string) (*Staged, error) {
	p, err := s.Path(key)
	if err != nil {
		return nil, err
	}
	src, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	leased, err := readLease(src)
	if err != nil {
		return nil, err
	}
	defer releaseLease(src)
	var before os.FileInfo
	if leased {
		before, err = src.Stat()
	} else {
		before, err = quiet(ctx, src)
	}
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), tmpPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	st := &Staged{s: s, key: key, tmp: tmp.Name()}
	// A writer that waits lease-break-time (45 s by default) is let in by
	// the kernel even though the copy goes on; its writes start after
	// before was taken and at least that long after the file's time, so
	// fill's comparison of size and time sees them.
	err = st.fill(ctx, tmp, src, before)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		st.Discard()
		return nil, err
	}
	return st, nil
}

// quietFor is how long before a copy starts the file must not have been
// written for its modification time to prove a write during the copy:
// above a clock tick (10 ms at the lowest kernel tick rate) with room to
// spare. File systems with whole-second times (no nanoseconds) need more.
const (
	quietFor       = 100 * time.Millisecond
	quietForCoarse = 2100 * time.Millisecond
)

// quiet returns src's stat once its modification time is older than
// quietFor, waiting once if it is not; ErrChanged if it was written
// meanwhile.
func quiet(ctx context.Context, src *os.File) (os.FileInfo, error) {
	fi, err := src.Stat()
	if err != nil {
		return nil, err
	}
	need := quietFor
	if fi.ModTime().Nanosecond() == 0 {
		need = quietForCoarse
	}
	age := time.Since(fi.ModTime())
	if age > need {
		return fi, nil
	}
	// A time in the future proves writes as well (they stamp the present),
	// but is waited for no longer than need.
	t := time.NewTimer(min(need-age, need))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
	}
	again, err := src.Stat()
	if err != nil {
		return nil, err
	}
	if again.Size() != fi.Size() || !again.ModTime().Equal(fi.ModTime()) {
		return nil, ErrChanged
	}
	return again, nil
}

// fill copies src into tmp, checks that src did not change, and hashes
// the copy.
func (st *Staged) fill(ctx context.Context, tmp, src *os.File, before os.FileInfo) error {
	if err := tmp.Chmod(FileMode); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// A LimitedReader of an *os.File still takes copy_file_range.
		k, err := io.Copy(tmp, io.LimitReader(src, stageStep))
		n += k
		if err != nil {
			return fmt.Errorf("fsblob: copying %s: %w", src.Name(), err)
		}
		if k < stageStep {
			break
		}
	}
	after, err := src.Stat()
	if err != nil {
		return err
	}
	if after.Size() != n || before.Size() != n || !after.ModTime().Equal(before.ModTime()) {
		return ErrChanged
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(tmp, 0, n)); err != nil {
		return fmt.Errorf("fsblob: hashing the copy of %s: %w", src.Name(), err)
	}
	st.ETag, st.Size = etagOf(n, h), n
	return nil
}

// Publish renames the staged copy to its key, replacing what was there.
func (st *Staged) Publish(ctx context.Context) (sluice.BlobInfo, error) {
	p, err := st.s.Path(st.key)
	if err != nil {
		return sluice.BlobInfo{}, err
	}
	setETag(st.tmp, st.ETag)
	if err := place(st.tmp, p); err != nil {
		return sluice.BlobInfo{}, fmt.Errorf("fsblob: %w", err)
	}
	st.tmp = ""
	return st.s.Stat(ctx, st.key)
}

// Discard removes the staged copy unless it was published; it may be
// called more than once.
func (st *Staged) Discard() {
	if st.tmp != "" {
		os.Remove(st.tmp)
		st.tmp = ""
	}
}
