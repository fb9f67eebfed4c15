package fsblob

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

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

// stageStep is how much StageFile copies between hand-offs to the hash
// (and checks of the context): small, so that the hash starts at once and
// trails the copy closely; large enough that the calls do not count.
// hashRead is how much the hash reads at a time; stageAhead how far the
// copy may be ahead of the hash (a variable for the tests).
const (
	stageStep = 8 << 20
	hashRead  = 1 << 20
)

var stageAhead int64 = 256 << 20

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
	leased, err := takeLease(src)
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
// the copy. The hash (SHA-256, one stream, so one core) is the staging's
// floor: the kernel's copy runs beside it on the other core, a step
// ahead, instead of before it. The hash reads each step of the copy once
// the copy has written it (the ETag is the copy's bytes, as it names what
// is stored): hashing the source instead would lean on the lease and on
// the time check to prove the two reads saw the same bytes.
func (st *Staged) fill(ctx context.Context, tmp, src *os.File, before os.FileInfo) error {
	if err := tmp.Chmod(FileMode); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	// The copy may run up to stageAhead ahead of the hash (it is the
	// faster), no further: the hash then reads pages the copy has just
	// written, still in memory, however large the file.
	copied := make(chan int64, max(1, min(before.Size()/stageStep+2, stageAhead/stageStep)))
	var n int64
	g.Go(func() (err error) {
		defer close(copied)
		n, err = copySteps(gctx, tmp, src, copied)
		return err
	})
	h := sha256.New()
	var hashed int64
	g.Go(func() (err error) {
		hashed, err = hashSteps(gctx, h, tmp, copied)
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	after, err := src.Stat()
	if err != nil {
		return err
	}
	if after.Size() != n || before.Size() != n || !after.ModTime().Equal(before.ModTime()) {
		return ErrChanged
	}
	if hashed != n {
		return fmt.Errorf("fsblob: hashing the copy of %s: read %d of its %d bytes", src.Name(), hashed, n)
	}
	st.ETag, st.Size = etagOf(n, h), n
	return nil
}

// copySteps copies src into tmp stageStep bytes at a time, sending how
// far it got after each step.
func copySteps(ctx context.Context, tmp, src *os.File, copied chan<- int64) (int64, error) {
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		// A LimitedReader of an *os.File still takes copy_file_range.
		k, err := io.Copy(tmp, io.LimitReader(src, stageStep))
		n += k
		if err != nil {
			return n, fmt.Errorf("fsblob: copying %s: %w", src.Name(), err)
		}
		if stepHook != nil {
			stepHook(n)
		}
		select {
		case copied <- n:
		case <-ctx.Done():
			return n, ctx.Err()
		}
		if k < stageStep {
			return n, nil
		}
	}
}

// hashSteps hashes tmp up to each offset copySteps sends, and returns how
// many bytes it hashed. It reads hashRead bytes at a time: io.Copy's
// 32 KiB would be 22,000 reads at 722 MB.
func hashSteps(ctx context.Context, h hash.Hash, tmp *os.File, copied <-chan int64) (int64, error) {
	buf := make([]byte, hashRead)
	var off int64
	for end := range copied {
		if err := ctx.Err(); err != nil {
			return off, err
		}
		k, err := io.CopyBuffer(h, io.NewSectionReader(tmp, off, end-off), buf)
		off += k
		if err != nil {
			return off, fmt.Errorf("fsblob: hashing the copy of %s: %w", tmp.Name(), err)
		}
	}
	return off, nil
}

// takeLease is readLease; tests stand in a file system without leases.
var takeLease = readLease

// stepHook, when set (by tests), is called after each step of the copy
// with the bytes copied so far.
var stepHook func(copied int64)

// Publish renames the staged copy to its key, replacing what was there.
func (st *Staged) Publish(ctx context.Context) (sluice.BlobInfo, error) {
	p, err := st.s.Path(st.key)
	if err != nil {
		return sluice.BlobInfo{}, err
	}
	setETag(st.tmp, st.ETag)
	if err := st.s.place(st.tmp, p); err != nil {
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
