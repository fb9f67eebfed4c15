package pipeline_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// copyCounter counts the copies made through a real store (the engine's
// fsblob bucket); every call goes through to it.
type copyCounter struct {
	sluice.BlobStore
	copies atomic.Int32
}

func (c *copyCounter) CopyIf(ctx context.Context, src, dst, etag string) error {
	c.copies.Add(1)
	return c.BlobStore.CopyIf(ctx, src, dst, etag)
}

func (c *copyCounter) Copy(ctx context.Context, src, dst string) error {
	c.copies.Add(1)
	return c.BlobStore.Copy(ctx, src, dst)
}

// TestRetriedSplitCopiesTheArchiveOnce: a split (ranges mode) that failed
// after archiving the input and is retried finds the archive its first
// attempt made (a copy of the batch's upload) and copies nothing again.
func TestRetriedSplitCopiesTheArchiveOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	if cfg.CopyChunks {
		t.Fatal("the default is no longer ranges mode: this test needs it")
	}
	eng, err := embedded.Open(filepath.Join(dir, "data"), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	r := &scanRig{t: t, ctx: t.Context(), dir: dir, eng: eng, ingest: eng.Queues[pipeline.QueueIngest]}
	sub, err := eng.Submit(r.ctx, r.orders("in", 500, 3))
	if err != nil {
		t.Fatal(err)
	}
	d := eng.Deps()
	counted := &copyCounter{BlobStore: d.Blobs}
	d.Blobs = counted
	d.Fault = func(p string) error {
		if p == pipeline.PointSplitAfterChunkPut {
			return errors.New("crash after a chunk")
		}
		return nil
	}
	ev := r.receive(1)[0]
	if err := (pipeline.Splitter{Deps: d}).Handle(r.ctx, ev); err == nil {
		t.Fatal("the fault did not stop the split")
	}
	if n := counted.copies.Load(); n != 1 {
		t.Fatalf("the first attempt made %d copies; want the archive's one", n)
	}
	d.Fault = nil
	ev.ReceiveCount = 2
	if err := (pipeline.Splitter{Deps: d}).Handle(r.ctx, ev); err != nil {
		t.Fatal(err)
	}
	if n := counted.copies.Load(); n != 1 {
		t.Errorf("%d copies after the retry; want the first attempt's one", n)
	}
	b := r.batch(sub.BatchID)
	if b.State != sluice.StateProcessing || b.RowsIn != 500 {
		t.Fatalf("batch after the retry: %s %q, %d rows; want processing with 500", b.State, b.Reason, b.RowsIn)
	}
}
