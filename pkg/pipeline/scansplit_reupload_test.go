package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// These tests drive the scan split message by message on a real embedded
// engine (SQLite queues and ledger, files) and upload a new file under the
// same name while an older batch of that name is still splitting.

type scanRig struct {
	t      *testing.T
	ctx    context.Context
	dir    string
	eng    *embedded.Engine
	sp     pipeline.Splitter
	ingest sluice.Queue
}

func newScanRig(t *testing.T) *scanRig {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.ScanSplit = config.ScanSplit{MinBytes: 1, RangeBytes: 50_000}
	eng, err := embedded.Open(filepath.Join(dir, "data"), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return &scanRig{t: t, ctx: t.Context(), dir: dir, eng: eng, sp: pipeline.Splitter{Deps: eng.Deps()}, ingest: eng.Queues[pipeline.QueueIngest]}
}

// orders writes a generated orders file of rows rows under sub/.
func (r *scanRig) orders(sub string, rows int, seed int64) string {
	p, _, _, err := gen.WriteFiles(filepath.Join(r.dir, sub), gen.Options{Rows: rows, Seed: seed, RefRows: 100})
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

// receive takes up to n messages from the ingest queue.
func (r *scanRig) receive(n int) []sluice.Message {
	ms, err := r.ingest.Receive(r.ctx, n, time.Minute, 200*time.Millisecond)
	if err != nil {
		r.t.Fatal(err)
	}
	return ms
}

func (r *scanRig) handle(m sluice.Message) {
	r.t.Helper()
	if err := r.sp.Handle(r.ctx, m); err != nil {
		r.t.Fatal(err)
	}
}

// fanOut submits path, handles its event and returns the scan messages.
func (r *scanRig) fanOut(path string) (sluice.Batch, sluice.Message, []sluice.Message) {
	sub, err := r.eng.Submit(r.ctx, path)
	if err != nil {
		r.t.Fatal(err)
	}
	ev := r.receive(1)
	if len(ev) != 1 {
		r.t.Fatalf("no ingest event for %s", path)
	}
	r.handle(ev[0])
	scans := r.receive(100)
	if len(scans) < 2 {
		r.t.Fatalf("%d scan messages; want several", len(scans))
	}
	b, err := r.eng.Ledger.GetBatch(r.ctx, sub.BatchID)
	if err != nil {
		r.t.Fatal(err)
	}
	return b, ev[0], scans
}

func (r *scanRig) batch(id string) sluice.Batch {
	b, err := r.eng.Ledger.GetBatch(r.ctx, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func (r *scanRig) read(key string) []byte {
	rc, err := r.eng.Blobs.Get(r.ctx, key)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		r.t.Fatal(err)
	}
	return data
}

// The stitch of the first batch must not delete a new upload of its key.
func TestScanStitchKeepsReupload(t *testing.T) {
	r := newScanRig(t)
	orders := r.orders("in", 2000, 3)
	b1, _, scans := r.fanOut(orders)
	for _, m := range scans[:len(scans)-1] {
		r.handle(m)
	}
	data, _ := os.ReadFile(orders)
	fixed := filepath.Join(r.dir, "fixed", filepath.Base(orders))
	os.MkdirAll(filepath.Dir(fixed), 0o755)
	os.WriteFile(fixed, append(data, data[len(data)-200:]...), 0o644)
	sub2, err := r.eng.Submit(r.ctx, fixed)
	if err != nil {
		t.Fatalf("second submit refused: %v", err)
	}
	r.handle(scans[len(scans)-1]) // the stitch
	if b := r.batch(b1.ID); b.State != sluice.StateProcessing || b.RowsIn != 2000 || b.TotalChunks < 1 {
		t.Fatalf("first batch after the stitch: %s %q, %d chunks", b.State, b.Reason, b.TotalChunks)
	}
	if _, err := r.eng.Blobs.Stat(r.ctx, sub2.Key); err != nil {
		t.Fatalf("the second upload %s was deleted by the first batch's stitch: %v", sub2.Key, err)
	}
	ev := r.receive(1)
	if len(ev) != 1 {
		t.Fatal("no event for the second upload")
	}
	r.handle(ev[0])
	if b := r.batch(sub2.BatchID); b.State != sluice.StateSplitting || b.Reason != "" {
		t.Fatalf("second batch: %s %q; want it fanned out and splitting", b.State, b.Reason)
	}
	if got := r.read(pipeline.ArchiveKey(r.batch(sub2.BatchID))); !bytes.Equal(got, append(data, data[len(data)-200:]...)) {
		t.Fatalf("second batch's archive holds %d bytes, not the second upload", len(got))
	}
}

// A bad file found by the stitch fails its batch and archives the bad
// file, not a corrected upload of the same name made meanwhile.
func TestScanBadFileKeepsReupload(t *testing.T) {
	r := newScanRig(t)
	orders := r.orders("in", 2000, 3)
	good, _ := os.ReadFile(orders)
	bad := append(append([]byte{}, good...), []byte("x,\"never closed\n")...)
	badPath := filepath.Join(r.dir, "bad", filepath.Base(orders))
	os.MkdirAll(filepath.Dir(badPath), 0o755)
	os.WriteFile(badPath, bad, 0o644)
	b1, _, scans := r.fanOut(badPath)
	for _, m := range scans[:len(scans)-1] {
		r.handle(m)
	}
	sub2, err := r.eng.Submit(r.ctx, orders) // the corrected file, same name
	if err != nil {
		t.Fatalf("second submit refused: %v", err)
	}
	r.handle(scans[len(scans)-1])
	if b := r.batch(b1.ID); b.State != sluice.StateFailed || b.Reason == "" {
		t.Fatalf("bad batch: %s %q; want failed with a reason", b.State, b.Reason)
	}
	if _, err := r.eng.Blobs.Stat(r.ctx, sub2.Key); err != nil {
		t.Fatalf("the corrected upload is gone from %s: %v", sub2.Key, err)
	}
	if got := r.read(pipeline.ArchiveKey(b1)); !bytes.Equal(got, bad) {
		t.Fatalf("bad batch's archive: %d bytes, want the bad file's %d (corrected: %d)", len(got), len(bad), len(good))
	}
}

// A duplicate (or redelivered) event of the first upload, after a new
// upload of its key, must not copy the new upload over the first batch's
// archive, which its scan ranges and chunks read.
func TestScanRedeliveredEventKeepsArchive(t *testing.T) {
	r := newScanRig(t)
	orders := r.orders("in", 2000, 3)
	other := r.orders("in2", 3000, 9)
	b1, ev, scans := r.fanOut(orders)
	r.handle(scans[0])
	if _, err := r.eng.SubmitAs(r.ctx, other, filepath.Base(orders)); err != nil {
		t.Fatalf("second submit refused: %v", err)
	}
	want := r.read(pipeline.ArchiveKey(b1))
	ev.ReceiveCount = 2
	r.handle(ev)
	if got := r.read(pipeline.ArchiveKey(b1)); !bytes.Equal(got, want) {
		t.Fatalf("batch %s's archive now holds %d bytes, not its own %d", b1.ID, len(got), len(want))
	}
	// The first batch's scans (old and resent) finish its split.
	for _, m := range append(scans[1:], r.receive(200)...) {
		if sluice.IsScanRange(m.Body) {
			r.handle(m)
		}
	}
	if b := r.batch(b1.ID); b.State != sluice.StateProcessing || b.RowsIn != 2000 || b.TotalChunks < 1 {
		t.Fatalf("batch 1: %s %q, %d chunks", b.State, b.Reason, b.TotalChunks)
	}
}

// The completing count committed but its caller saw a repeat (a lost
// reply, retried by the SDK): the stitch must still run.
func TestScanLostCountReplyStitches(t *testing.T) {
	r := newScanRig(t)
	b, _, scans := r.fanOut(r.orders("in", 2000, 3))
	for _, m := range scans[:len(scans)-1] {
		r.handle(m)
	}
	var last sluice.ScanRange
	if err := sluice.Decode(scans[len(scans)-1].Body, &last); err != nil {
		t.Fatal(err)
	}
	c, err := r.eng.Ledger.ScanRangeDone(r.ctx, b.ID, last.Range, last.Ranges)
	if err != nil || !c.Completed {
		t.Fatalf("the first attempt's count: %+v, %v", c, err)
	}
	r.handle(scans[len(scans)-1]) // first delivery: its count is a repeat
	if got := r.batch(b.ID); got.State != sluice.StateProcessing || got.TotalChunks < 1 {
		t.Fatalf("batch %s after every range was handled once: %s, %d chunks; want processing", b.ID, got.State, got.TotalChunks)
	}
}

// Copies mode: a split that died after archiving its input is redelivered
// after a new upload of the key; it re-splits its own archive, leaves the
// new upload in place and does not archive it.
func TestCopiesSplitRedeliveryKeepsReupload(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.CopyChunks = true
	eng, err := embedded.Open(filepath.Join(dir, "data"), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	r := &scanRig{t: t, ctx: t.Context(), dir: dir, eng: eng, ingest: eng.Queues[pipeline.QueueIngest]}
	orders := r.orders("in", 500, 3)
	other := r.orders("in2", 700, 9)
	sub, err := eng.Submit(r.ctx, orders)
	if err != nil {
		t.Fatal(err)
	}
	d := eng.Deps()
	d.Fault = func(p string) error {
		if p == pipeline.PointSplitAfterArchive {
			return errors.New("crash after the archive")
		}
		return nil
	}
	ev := r.receive(1)[0]
	if err := (pipeline.Splitter{Deps: d}).Handle(r.ctx, ev); err == nil {
		t.Fatal("the fault did not stop the split")
	}
	want := r.read(pipeline.ArchiveKey(r.batch(sub.BatchID)))
	sub2, err := eng.SubmitAs(r.ctx, other, filepath.Base(orders))
	if err != nil {
		t.Fatalf("second submit refused: %v", err)
	}
	d.Fault = nil
	ev.ReceiveCount = 2
	if err := (pipeline.Splitter{Deps: d}).Handle(r.ctx, ev); err != nil {
		t.Fatal(err)
	}
	b := r.batch(sub.BatchID)
	if b.State != sluice.StateProcessing || b.RowsIn != 500 {
		t.Fatalf("batch 1 after the redelivery: %s %q, %d rows; want processing with its own 500", b.State, b.Reason, b.RowsIn)
	}
	if got := r.read(pipeline.ArchiveKey(b)); !bytes.Equal(got, want) {
		t.Fatalf("batch 1's archive changed: %d bytes, was %d", len(got), len(want))
	}
	if _, err := eng.Blobs.Stat(r.ctx, sub2.Key); err != nil {
		t.Fatalf("the second upload was removed: %v", err)
	}
}

// A split message dead-lettered after a new upload of the key fails its
// batch without archiving (or removing) the new upload.
func TestSplitDeadLetterKeepsReupload(t *testing.T) {
	r := newScanRig(t)
	orders := r.orders("in", 2000, 3)
	b1, _, scans := r.fanOut(orders)
	want := r.read(pipeline.ArchiveKey(b1))
	sub2, err := r.eng.SubmitAs(r.ctx, r.orders("in2", 3000, 9), filepath.Base(orders))
	if err != nil {
		t.Fatalf("second submit refused: %v", err)
	}
	r.eng.Deps().DeadLettered(r.ctx, "split", scans[0], errors.New("never handled"))
	if b := r.batch(b1.ID); b.State != sluice.StateFailed {
		t.Fatalf("batch 1: %s; want failed", b.State)
	}
	if got := r.read(pipeline.ArchiveKey(b1)); !bytes.Equal(got, want) {
		t.Fatalf("batch 1's archive changed: %d bytes, was %d", len(got), len(want))
	}
	if _, err := r.eng.Blobs.Stat(r.ctx, sub2.Key); err != nil {
		t.Fatalf("the second upload was removed: %v", err)
	}
}

// replaceArchive stores other bytes at the batch's archive key, as a
// replayed split of another upload did before source() compared ETags.
func (r *scanRig) replaceArchive(b sluice.Batch) {
	if _, err := r.eng.Blobs.Put(r.ctx, pipeline.ArchiveKey(b), bytes.NewReader(r.read(pipeline.ArchiveKey(b))[:1000])); err != nil {
		r.t.Fatal(err)
	}
}

// A scan range whose archive changed since the fan-out refuses it with a
// permanent error naming the file, instead of summarizing other bytes.
func TestScanRangeRefusesChangedArchive(t *testing.T) {
	r := newScanRig(t)
	b, _, scans := r.fanOut(r.orders("in", 2000, 3))
	r.replaceArchive(b)
	err := r.sp.Handle(r.ctx, scans[0])
	if !sluice.IsPermanent(err) || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("scan range over a replaced archive: %v; want a permanent error saying so", err)
	}
}

// A worker's range whose archive changed since the split refuses it the same way.
func TestChunkRangeRefusesChangedArchive(t *testing.T) {
	dir := t.TempDir()
	eng, err := embedded.Open(filepath.Join(dir, "data"), config.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	r := &scanRig{t: t, ctx: t.Context(), dir: dir, eng: eng, sp: pipeline.Splitter{Deps: eng.Deps()}, ingest: eng.Queues[pipeline.QueueIngest]}
	orders, fin, _, err := gen.WriteFiles(filepath.Join(dir, "in"), gen.Options{Rows: 500, Seed: 3, RefRows: 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.LoadReference(r.ctx, fin, nil); err != nil {
		t.Fatal(err)
	}
	sub, err := eng.Submit(r.ctx, orders)
	if err != nil {
		t.Fatal(err)
	}
	r.handle(r.receive(1)[0])
	ms, err := eng.Queues[pipeline.QueueChunks].Receive(r.ctx, 1, time.Minute, time.Second)
	if err != nil || len(ms) != 1 {
		t.Fatalf("chunk messages: %d, %v", len(ms), err)
	}
	var c sluice.ChunkReady
	if err := sluice.Decode(ms[0].Body, &c); err != nil || c.InputETag == "" {
		t.Fatalf("chunk message %s carries no ETag (%v)", ms[0].Body, err)
	}
	r.replaceArchive(r.batch(sub.BatchID))
	err = pipeline.NewWorker(eng.Deps()).Handle(r.ctx, ms[0])
	if !sluice.IsPermanent(err) || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("chunk over a replaced archive: %v; want a permanent error saying so (batch %+v)", err, r.batch(sub.BatchID))
	}
}

// A configuration change while the scan split runs (another delimiter,
// another chunk size) does not reach the batch: its ranges are summarized
// and stitched with the settings the fan-out read its header with.
func TestScanSplitKeepsFanOutSettings(t *testing.T) {
	r := newScanRig(t)
	r.eng.Config.ChunkRows = 500
	b, _, scans := r.fanOut(r.orders("in", 2000, 3))
	cfg := *r.eng.Config // the configuration as deployed mid-split
	cfg.ChunkRows, cfg.Delimiter = 300, ";"
	d := *r.eng.Deps()
	d.Config = &cfg
	sp := pipeline.Splitter{Deps: &d}
	for _, m := range scans {
		if err := sp.Handle(r.ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	got := r.batch(b.ID)
	if got.State != sluice.StateProcessing || got.RowsIn != 2000 {
		t.Fatalf("batch after a mid-split config change: %s %q, %d rows; want processing, 2000 rows", got.State, got.Reason, got.RowsIn)
	}
	// Chunks end at 500 rows (the fan-out's chunkRows) or at a range's end.
	ms, err := r.eng.Queues[pipeline.QueueChunks].Receive(r.ctx, 100, time.Minute, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	most := 0
	for _, m := range ms {
		var c sluice.ChunkReady
		if err := sluice.Decode(m.Body, &c); err != nil {
			t.Fatal(err)
		}
		most = max(most, c.Rows)
	}
	if len(ms) != got.TotalChunks || most != 500 {
		t.Fatalf("%d chunk messages of at most %d rows (total %d); want chunks of the fan-out's 500 rows", len(ms), most, got.TotalChunks)
	}
}

// An event whose upload was overwritten before any split read it fails its
// batch saying so, and leaves the new upload (its own batch) in place.
func TestSplitOfReplacedUploadFails(t *testing.T) {
	r := newScanRig(t)
	sub, err := r.eng.Submit(r.ctx, r.orders("in", 500, 3))
	if err != nil {
		t.Fatal(err)
	}
	other := []byte("uuid,Country\n1,x\n")
	if _, err := r.eng.Blobs.Put(r.ctx, sub.Key, bytes.NewReader(other)); err != nil {
		t.Fatal(err)
	}
	r.handle(r.receive(1)[0])
	b := r.batch(sub.BatchID)
	if b.State != sluice.StateFailed || !strings.Contains(b.Reason, "replaced by another upload") {
		t.Fatalf("batch of the overwritten upload: %s %q; want failed, saying it was replaced", b.State, b.Reason)
	}
	if got := r.read(sub.Key); !bytes.Equal(got, other) {
		t.Fatalf("the new upload changed: %q", got)
	}
	if _, err := r.eng.Blobs.Stat(r.ctx, pipeline.ArchiveKey(b)); err == nil {
		t.Fatal("the new upload was archived as the failed batch's input")
	}
}
