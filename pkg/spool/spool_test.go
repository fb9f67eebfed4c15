package spool_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/spool"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

// dir is a data directory: a real bucket and a real SQLite ledger. open
// gives a new Spool on it, as a restarted process would get.
type dir struct {
	t     *testing.T
	blobs *fsblob.Store
	db    *sqlite.DB
}

func newDir(t *testing.T) *dir {
	d := newDirB(t)
	d.t = t
	return d
}

// newDirB is newDir for a test or a benchmark.
func newDirB(t testing.TB) *dir {
	root := t.TempDir()
	blobs, err := fsblob.New(filepath.Join(root, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(filepath.Join(root, "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &dir{blobs: blobs, db: db}
}

func (d *dir) open(wait time.Duration) *spool.Spool {
	s := spool.New(d.blobs, d.db.Ledger())
	s.Wait = wait
	return s
}

const batchID = "b0123456789"

func spoolBatch(fault func(string) error) pipeline.SpoolBatch {
	part := func(kind string) func(int) string {
		return func(i int) string { return fmt.Sprintf("%s/output/%s/part%05d.csv", batchID, kind, i) }
	}
	return pipeline.SpoolBatch{
		ID: batchID,
		Files: [2]pipeline.SpoolFile{
			{Key: batchID + "/output/completed/output.csv", Spool: pipeline.SpoolPrefix(batchID) + "output.csv", Header: []byte("a,b,ref\n"), Part: part("parts")},
			{Key: batchID + "/output/completed/errors.csv", Spool: pipeline.SpoolPrefix(batchID) + "errors.csv", Header: []byte("line,column,rule,message,raw\n"), Part: part("errors")},
		},
		Fault: fault,
	}
}

// chunk is chunk i's output and error rows; some chunks have no errors,
// and chunk 3 no output, as real chunks may.
func chunk(i int) (out, errs []byte) {
	var o, e bytes.Buffer
	if i != 3 {
		for r := range 50 + i%7 {
			fmt.Fprintf(&o, "%d,row %d of chunk %d,\"quoted, value\"\n", i*1000+r, r, i)
		}
	}
	if i%2 == 0 {
		fmt.Fprintf(&e, "%d,a,required,missing,\"x,y\"\n", i*1000+7)
	}
	return o.Bytes(), e.Bytes()
}

// want is what the merge of header + parts 0..n-1 gives.
func want(sb pipeline.SpoolBatch, n int) (out, errs []byte) {
	out, errs = bytes.Clone(sb.Files[0].Header), bytes.Clone(sb.Files[1].Header)
	for i := range n {
		o, e := chunk(i)
		out, errs = append(out, o...), append(errs, e...)
	}
	return out, errs
}

func (d *dir) append(s *spool.Spool, sb pipeline.SpoolBatch, i int) bool {
	d.t.Helper()
	o, e := chunk(i)
	ok, err := s.Append(d.t.Context(), sb, i, o, e)
	if err != nil {
		d.t.Fatalf("append %d: %v", i, err)
	}
	return ok
}

// putParts stores chunk i as parts, as the worker does when Append says no.
func (d *dir) putParts(sb pipeline.SpoolBatch, i int) {
	d.t.Helper()
	o, e := chunk(i)
	if err := d.blobs.PutScratch(d.t.Context(), sb.Files[0].Part(i), bytes.NewReader(o)); err != nil {
		d.t.Fatal(err)
	}
	if err := d.blobs.PutScratch(d.t.Context(), sb.Files[1].Part(i), bytes.NewReader(e)); err != nil {
		d.t.Fatal(err)
	}
}

// finalise finalises and checks the two objects: header + chunks byte for
// byte, digests equal to sha256sum of the files and to their ETags.
func (d *dir) finalise(s *spool.Spool, sb pipeline.SpoolBatch, n int) {
	d.t.Helper()
	dg, err := s.Finalise(d.t.Context(), sb, n)
	if err != nil {
		d.t.Fatalf("finalise: %v", err)
	}
	d.check(sb, n, dg)
}

func (d *dir) check(sb pipeline.SpoolBatch, n int, dg [2]pipeline.FileDigest) {
	d.t.Helper()
	wo, we := want(sb, n)
	for i, w := range [][]byte{wo, we} {
		got, err := os.ReadFile(filepath.Join(d.blobs.Root(), sb.Files[i].Key))
		if err != nil {
			d.t.Fatal(err)
		}
		if !bytes.Equal(got, w) {
			d.t.Fatalf("%s: %d bytes, want %d (header + the chunks in order)", sb.Files[i].Key, len(got), len(w))
		}
		sum := sha256.Sum256(got)
		if dg[i].Key != sb.Files[i].Key || dg[i].Bytes != int64(len(got)) || dg[i].SHA256 != hex.EncodeToString(sum[:]) {
			d.t.Fatalf("digest %+v, want %s %d %x", dg[i], sb.Files[i].Key, len(got), sum)
		}
		info, err := d.blobs.Stat(d.t.Context(), sb.Files[i].Key)
		etag, _, _ := fsblob.ETagOfFile(filepath.Join(d.blobs.Root(), sb.Files[i].Key))
		if err != nil || info.ETag != etag {
			d.t.Fatalf("ETag %q, want Put's %q (%v)", info.ETag, etag, err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(d.blobs.Root(), pipeline.SpoolPrefix(batchID), "*")); len(left) != 0 {
		d.t.Fatalf("spool files left: %v", left)
	}
}

func TestInOrder(t *testing.T) {
	d := newDir(t)
	s, sb := d.open(time.Second), spoolBatch(nil)
	for i := range 6 {
		if !d.append(s, sb, i) {
			t.Fatalf("chunk %d, in order, was not appended", i)
		}
	}
	d.finalise(s, sb, 6)
	// A second finalise (a redelivered merge message) gives the same.
	d.finalise(s, sb, 6)
	d.finalise(d.open(time.Second), sb, 6)
}

// TestOutOfOrder: a chunk whose predecessor is late waits for it and is
// woken when it comes; one whose predecessor does not come within the
// bound gets false and stores parts, which the spool copies in when it
// reaches them, and the merge copies in the rest.
func TestOutOfOrder(t *testing.T) {
	d := newDir(t)
	s, sb := d.open(10*time.Second), spoolBatch(nil)
	woken := make(chan bool)
	start := time.Now()
	go func() { woken <- d.append(s, sb, 1) }()
	time.Sleep(20 * time.Millisecond) // let chunk 1 wait
	if !d.append(s, sb, 0) || !<-woken {
		t.Fatal("chunks 0 and 1 were not both appended")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("chunk 1 was not woken by chunk 0")
	}
	short := d.open(30 * time.Millisecond) // a restarted process: reloads the state
	if short.Wait = 30 * time.Millisecond; d.append(short, sb, 3) {
		t.Fatal("chunk 3 was appended before chunk 2")
	}
	d.putParts(sb, 3)
	if err := short.Parted(t.Context(), sb, 3); err != nil {
		t.Fatal(err)
	}
	if !d.append(short, sb, 2) {
		t.Fatal("chunk 2 was not appended")
	}
	if !d.append(short, sb, 4) { // copies chunk 3's parts in first
		t.Fatal("chunk 4 was not appended after chunk 3's parts")
	}
	if d.append(short, sb, 6) {
		t.Fatal("chunk 6 was appended before chunk 5")
	}
	d.putParts(sb, 6)
	d.putParts(sb, 5)
	if err := short.Parted(t.Context(), sb, 5); err != nil { // copies 5, then 6
		t.Fatal(err)
	}
	if !d.append(short, sb, 6) { // in already
		t.Fatal("chunk 6 is not in the spool after the catch-up")
	}
	d.putParts(sb, 7)
	d.finalise(short, sb, 8) // copies 7
}

// TestMissingPartFailsTheMerge: a merge that finds a chunk neither in the
// spool nor in parts says so, and writes nothing to the output key.
func TestMissingPartFailsTheMerge(t *testing.T) {
	d := newDir(t)
	s, sb := d.open(10*time.Millisecond), spoolBatch(nil)
	d.append(s, sb, 0)
	_, err := s.Finalise(t.Context(), sb, 2)
	if err == nil || !strings.Contains(err.Error(), "chunk 1 of 2") {
		t.Fatalf("finalise with chunk 1 missing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.blobs.Root(), sb.Files[0].Key)); err == nil {
		t.Fatal("an output was written")
	}
	d.putParts(sb, 1)
	d.finalise(s, sb, 2)
}

// TestRedeliveryRewritesNothing: a chunk already in the spool is not
// written again. With the same bytes it is accepted; with other bytes (its
// counts would then disagree with the file) it is refused with a
// pipeline.SpoolError that names the cause, in this process and the next.
func TestRedeliveryRewritesNothing(t *testing.T) {
	d := newDir(t)
	s, sb := d.open(time.Second), spoolBatch(nil)
	d.append(s, sb, 0)
	d.append(s, sb, 1)
	for _, sp := range []*spool.Spool{s, d.open(time.Second)} {
		o, e := chunk(0)
		if ok, err := sp.Append(t.Context(), sb, 0, o, e); err != nil || !ok {
			t.Fatalf("redelivered chunk 0, same bytes: %v %v", ok, err)
		}
		_, err := sp.Append(t.Context(), sb, 0, []byte("other bytes\n"), e)
		var se *pipeline.SpoolError
		if !errors.As(err, &se) || !strings.Contains(se.Reason, "chunk 0 gave other bytes on retry") {
			t.Fatalf("redelivered chunk 0, other bytes: %v", err)
		}
	}
	d.finalise(s, sb, 2)
}

var errCrash = errors.New("crash")

// TestCrashBetweenWriteAndRecord: a chunk's bytes written, its state not
// recorded; the restarted process cuts the files back and the redelivered
// chunk writes the same bytes at the same place.
func TestCrashBetweenWriteAndRecord(t *testing.T) {
	d := newDir(t)
	crashAt := 2
	n := 0
	sb := spoolBatch(func(p string) error {
		if p == pipeline.PointSpoolAfterWrite {
			if n++; n == crashAt+1 {
				return errCrash
			}
		}
		return nil
	})
	s := d.open(time.Second)
	d.append(s, sb, 0)
	d.append(s, sb, 1)
	o, e := chunk(2)
	if _, err := s.Append(t.Context(), sb, 2, o, e); !errors.Is(err, errCrash) {
		t.Fatalf("append 2: %v, want the crash", err)
	}
	// What the crash left: chunk 2's bytes past the recorded end, and
	// garbage a torn write could add.
	f, _ := os.OpenFile(filepath.Join(d.blobs.Root(), sb.Files[0].Spool), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("torn write\n")
	f.Close()
	again := d.open(time.Second)
	d.append(again, sb, 2)
	d.append(again, sb, 3)
	d.finalise(again, sb, 4)
}

// TestCrashAfterRecord: the state recorded, the process gone before the
// rejects and count: the redelivered chunk finds itself in the spool.
func TestCrashAfterRecord(t *testing.T) {
	d := newDir(t)
	sb := spoolBatch(nil)
	d.append(d.open(time.Second), sb, 0)
	again := d.open(time.Second)
	if !d.append(again, sb, 0) {
		t.Fatal("redelivered chunk 0 not acknowledged")
	}
	d.append(again, sb, 1)
	d.finalise(again, sb, 2)
}

// TestCrashInFinalise: the digests recorded, the files not moved: the
// next merge moves them and returns the same digests.
func TestCrashInFinalise(t *testing.T) {
	d := newDir(t)
	sb := spoolBatch(func(p string) error {
		if p == pipeline.PointSpoolAfterFinal {
			return errCrash
		}
		return nil
	})
	s := d.open(time.Second)
	d.append(s, sb, 0)
	d.append(s, sb, 1)
	if _, err := s.Finalise(t.Context(), sb, 2); !errors.Is(err, errCrash) {
		t.Fatalf("finalise: %v, want the crash", err)
	}
	d.finalise(d.open(time.Second), spoolBatch(nil), 2)
}

// TestDropStopsWaiters: a failed batch's waiting chunk returns at once,
// and its files and state go.
func TestDropStopsWaiters(t *testing.T) {
	d := newDir(t)
	s, sb := d.open(time.Minute), spoolBatch(nil)
	d.append(s, sb, 0)
	done := make(chan bool)
	go func() { done <- d.append(s, sb, 2) }()
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	if err := s.Drop(t.Context(), batchID); err != nil {
		t.Fatal(err)
	}
	if <-done || time.Since(start) > 5*time.Second {
		t.Fatal("the waiter was not released, or appended to a dropped batch")
	}
	if left, _ := filepath.Glob(filepath.Join(d.blobs.Root(), pipeline.SpoolPrefix(batchID), "*")); len(left) != 0 {
		t.Fatalf("spool files left: %v", left)
	}
	if _, ok, err := d.db.Ledger().LoadSpool(t.Context(), batchID); ok || err != nil {
		t.Fatalf("state left: %v %v", ok, err)
	}
}

// TestConcurrentAppends: six workers, chunks in pairs swapped (each pair's
// second chunk arrives first and waits), and every tenth chunk slow, so
// the chunk after it falls back to parts after the 10 ms bound; the result
// is header + chunks in order. Run with -race.
func TestConcurrentAppends(t *testing.T) {
	d := newDir(t)
	sb := spoolBatch(nil)
	s := d.open(10 * time.Millisecond)
	const n = 64
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	fellBack := 0
	for range 6 {
		wg.Go(func() {
			for i := range jobs {
				if i%10 == 5 {
					time.Sleep(60 * time.Millisecond) // a slow chunk
				}
				o, e := chunk(i)
				ok, err := s.Append(t.Context(), sb, i, o, e)
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					mu.Lock()
					fellBack++
					mu.Unlock()
					d.putParts(sb, i)
					if err := s.Parted(t.Context(), sb, i); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	for i := 0; i < n; i += 2 {
		jobs <- i + 1
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	t.Logf("%d of %d chunks fell back to parts", fellBack, n)
	if fellBack == 0 {
		t.Fatal("no chunk fell back to parts: the test did not exercise the catch-up")
	}
	d.finalise(s, sb, n)
}

// failingStates is the real SQLite ledger with one state record made to
// fail, as a full disk or a busy database would.
type failingStates struct {
	spool.States
	mu     sync.Mutex
	saves  int
	failAt int
}

func (f *failingStates) SaveSpool(ctx context.Context, id string, data []byte, chunk int, sum []byte) error {
	f.mu.Lock()
	f.saves++
	fail := f.saves == f.failAt
	f.mu.Unlock()
	if fail {
		return errors.New("disk I/O error")
	}
	return f.States.SaveSpool(ctx, id, data, chunk, sum)
}

// TestFailedRecordReloads: when a state record fails, the chunk gets the
// error (its message is retried), nothing more is recorded from memory,
// and the next use reloads the recorded state and cuts the files back; the
// retried chunk is then written again, and the result is exact.
func TestFailedRecordReloads(t *testing.T) {
	d := newDir(t)
	states := &failingStates{States: d.db.Ledger(), failAt: 4} // the header's, chunk 0's, 1's, then 2's fails
	s := spool.New(d.blobs, states)
	s.Wait = time.Second
	sb := spoolBatch(nil)
	d.append(s, sb, 0)
	d.append(s, sb, 1)
	o, e := chunk(2)
	if _, err := s.Append(t.Context(), sb, 2, o, e); err == nil {
		t.Fatal("chunk 2's failed record was not reported")
	}
	if !d.append(s, sb, 2) { // the retry
		t.Fatal("retried chunk 2 not appended")
	}
	d.append(s, sb, 3)
	d.finalise(s, sb, 4)
}
