package spool_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/pipeline"
)

// batchNamed is spoolBatch for another batch ID; live says whether the
// batch may still start a spool (pipeline's spoolLive).
func batchNamed(id string, live bool) pipeline.SpoolBatch {
	sb := spoolBatch(nil)
	sb.ID = id
	for i := range sb.Files {
		f := &sb.Files[i]
		f.Key = strings.Replace(f.Key, batchID, id, 1)
		f.Spool = strings.Replace(f.Spool, batchID, id, 1)
		part := f.Part
		f.Part = func(c int) string { return strings.Replace(part(c), batchID, id, 1) }
	}
	sb.Live = func(context.Context) (bool, error) { return live, nil }
	return sb
}

// openFiles counts this process's descriptors on files under root.
func openFiles(t *testing.T, root string) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd here")
	}
	n := 0
	for _, e := range ents {
		// Only the spools' files: the bucket store itself holds its
		// liveness marker open for its lifetime (fsblob's live.go).
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(p, root) && strings.Contains(p, "/output/spool/") {
			n++
		}
	}
	return n
}

// TestManyBatchesLeaveNothing: a long-running engine (`sluice serve`) runs
// many batches through one Spool. Failed batches (Drop), merged ones
// (Finalise, then Drop as the merge does when the batch leaves merging)
// with late duplicates after it, and a stalled one keep no map entry, no
// state row and no open file.
func TestManyBatchesLeaveNothing(t *testing.T) {
	d := newDir(t)
	s := d.open(10 * time.Millisecond)
	ctx := t.Context()
	o, e := chunk(0)
	for i := range 100 {
		sb := batchNamed(fmt.Sprintf("failed%04d", i), true)
		if _, err := s.Append(ctx, sb, 0, o, e); err != nil {
			t.Fatal(err)
		}
		if err := s.Drop(ctx, sb.ID); err != nil {
			t.Fatal(err)
		}
		late := batchNamed(sb.ID, false) // the batch is failed now
		if ok, err := s.Append(ctx, late, 1, o, e); ok || err != nil {
			t.Fatalf("late chunk of a failed batch: %v %v", ok, err)
		}
	}
	for i := range 100 {
		sb := batchNamed(fmt.Sprintf("done%04d", i), true)
		if _, err := s.Append(ctx, sb, 0, o, e); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Finalise(ctx, sb, 1); err != nil {
			t.Fatal(err)
		}
		if err := s.Parted(ctx, sb, 0); err != nil { // a late duplicate before the batch moves on
			t.Fatal(err)
		}
		if err := s.Drop(ctx, sb.ID); err != nil { // the merge: the batch left merging
			t.Fatal(err)
		}
		late := batchNamed(sb.ID, false)
		if err := s.Parted(ctx, late, 0); err != nil { // and one after
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(d.blobs.Root(), sb.Files[0].Key)); err != nil {
			t.Fatalf("merged output: %v", err)
		}
	}
	stalled := batchNamed("stalled", true)
	if ok, err := s.Append(ctx, stalled, 1, o, e); ok || err != nil { // chunk 0 never comes
		t.Fatalf("stalled: %v %v", ok, err)
	}
	if n := s.Entries(); n != 1 {
		t.Errorf("%d batch entries kept after 100 failed, 100 merged and 1 stalled batch; want the stalled one", n)
	}
	if n, err := d.db.Ledger().SpoolRows(ctx); n != 1 || err != nil {
		t.Errorf("%d spool_state rows (%v); want the stalled one", n, err)
	}
	if n := openFiles(t, d.blobs.Root()); n != 0 {
		t.Errorf("%d spool files left open between calls", n)
	}
	if err := s.Close(); err != nil || s.Entries() != 0 {
		t.Errorf("Close: %v, %d entries", err, s.Entries())
	}
	for _, id := range []string{"failed0000", "done0000"} {
		if _, err := os.Stat(filepath.Join(d.blobs.Root(), pipeline.SpoolPrefix(id))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: spool directory left: %v", id, err)
		}
	}
}

// TestShortSpoolFileFailsTheBatch: a spool file shorter than its recorded
// length lost written bytes (not a process crash: a power loss or a disk
// fault). Extending it would pad it with zeros under a digest that is not
// the file's; the spool refuses with a pipeline.SpoolError instead, which
// fails the batch, and writes no output.
func TestShortSpoolFileFailsTheBatch(t *testing.T) {
	d := newDir(t)
	sb := spoolBatch(nil)
	s := d.open(time.Second)
	d.append(s, sb, 0)
	d.append(s, sb, 1)
	p := filepath.Join(d.blobs.Root(), sb.Files[0].Spool)
	o, _ := chunk(0)
	if err := os.Truncate(p, int64(len(sb.Files[0].Header)+len(o))); err != nil {
		t.Fatal(err)
	}
	again := d.open(time.Second)
	o2, e2 := chunk(2)
	_, err := again.Append(t.Context(), sb, 2, o2, e2)
	var se *pipeline.SpoolError
	if !errors.As(err, &se) || !strings.Contains(se.Reason, "fewer than the") {
		t.Fatalf("append after the loss: %v", err)
	}
	if _, err := again.Finalise(t.Context(), sb, 3); !errors.As(err, &se) {
		t.Fatalf("finalise after the loss: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.blobs.Root(), sb.Files[0].Key)); err == nil {
		t.Fatal("an output was written")
	}
}

// crashAt is a fault hook that fails once at point.
func crashAt(point string) func(string) error {
	done := false
	return func(p string) error {
		if p == point && !done {
			done = true
			return errCrash
		}
		return nil
	}
}

// TestCrashBetweenRenames: the output moved to its key, the error report
// not; a restarted process (a new Spool on the same directory and
// database) finishes the move and returns the recorded digests, which are
// the files' and their ETags'.
func TestCrashBetweenRenames(t *testing.T) {
	d := newDir(t)
	sb := spoolBatch(crashAt(pipeline.PointSpoolAfterRename))
	s := d.open(time.Second)
	d.append(s, sb, 0)
	d.append(s, sb, 1)
	if _, err := s.Finalise(t.Context(), sb, 2); !errors.Is(err, errCrash) {
		t.Fatalf("finalise: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.blobs.Root(), sb.Files[1].Key)); err == nil {
		t.Fatal("the fault point is not between the renames")
	}
	d.finalise(d.open(time.Second), sb, 2)
}

// TestCrashInStartBeforeRecord: the files started with their headers, no
// state recorded; the restarted process starts them over.
func TestCrashInStartBeforeRecord(t *testing.T) {
	d := newDir(t)
	sb := spoolBatch(crashAt(pipeline.PointSpoolAfterStart))
	o, e := chunk(0)
	if _, err := d.open(time.Second).Append(t.Context(), sb, 0, o, e); !errors.Is(err, errCrash) {
		t.Fatalf("append: %v", err)
	}
	if _, ok, _ := d.db.Ledger().LoadSpool(t.Context(), sb.ID); ok {
		t.Fatal("a state was recorded before the fault point")
	}
	s := d.open(time.Second)
	for i := range 3 {
		d.append(s, sb, i)
	}
	d.finalise(s, sb, 3)
}

// TestRestartWithPartsWaiting: chunk 1 fell back to parts (chunk 0 was
// late) and the process stopped; in the next one chunk 0 arrives, and the
// spool copies chunk 1's parts in behind it.
func TestRestartWithPartsWaiting(t *testing.T) {
	d := newDir(t)
	sb := spoolBatch(nil)
	s := d.open(10 * time.Millisecond)
	if d.append(s, sb, 1) {
		t.Fatal("chunk 1 appended before chunk 0")
	}
	d.putParts(sb, 1)
	if err := s.Parted(t.Context(), sb, 1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	again := d.open(10 * time.Millisecond)
	d.append(again, sb, 0)
	d.append(again, sb, 2)
	d.finalise(again, sb, 3)
}

// TestCrashInsideDrop: the files removed, the state not; Drop again (gc,
// the notifier) removes the state, and a late chunk of the ended batch in
// the next process starts no spool.
func TestCrashInsideDrop(t *testing.T) {
	d := newDir(t)
	sb := batchNamed(batchID, true)
	s := d.open(time.Second)
	d.append(s, sb, 0)
	s.DropFault = func(string) error { return errCrash }
	if err := s.Drop(t.Context(), sb.ID); !errors.Is(err, errCrash) {
		t.Fatalf("drop: %v", err)
	}
	again := d.open(time.Second)
	if err := again.Drop(t.Context(), sb.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.db.Ledger().SpoolRows(t.Context()); n != 0 {
		t.Fatalf("%d state rows after the second Drop", n)
	}
	o, e := chunk(1)
	if ok, err := again.Append(t.Context(), batchNamed(batchID, false), 1, o, e); ok || err != nil {
		t.Fatalf("late chunk: %v %v", ok, err)
	}
	if _, err := os.Stat(filepath.Join(d.blobs.Root(), pipeline.SpoolPrefix(batchID))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the ended batch's spool came back: %v", err)
	}
}
