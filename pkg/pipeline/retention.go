package pipeline

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// IntermediatePrefixes are where a batch keeps what only the pipeline
// reads: the chunks and the per-chunk output and error parts. Once the
// batch has ended nothing reads them (a redelivered chunk or merge message
// for an ended batch is ignored), so they can go.
func IntermediatePrefixes(b sluice.Batch) []string {
	return []string{b.ID + "/to_process/", b.ID + "/output/parts/", b.ID + "/output/errors/"}
}

// OutputPrefix is where a batch's merged output, error report and
// manifest are.
func OutputPrefix(b sluice.Batch) string { return b.ID + "/output/completed/" }

// Removal is what RemovePrefixes removed (or, on a dry run, would remove).
type Removal struct {
	Objects []sluice.BlobInfo
	Bytes   int64
}

// removeConcurrency is how many deletes RemovePrefixes has in flight. The
// notify stage removes a batch's intermediates after its email and before
// its message is acknowledged, so `sluice run` exits after them: one at a
// time, the 2,000 parts of a 10M-row batch took 0.7-2.5 s on a busy disk
// (an unlink waits for the writeback of its file's pages; several waits
// overlap), and on S3 each delete is a round trip.
const removeConcurrency = 8

// RemovePrefixes deletes every object under the prefixes, or only lists
// them when dryRun is set. On an error it returns what it removed before
// it stopped, in listing order.
func RemovePrefixes(ctx context.Context, blobs sluice.BlobStore, prefixes []string, dryRun bool) (Removal, error) {
	var objs []sluice.BlobInfo
	for _, p := range prefixes {
		o, err := blobs.List(ctx, p)
		if err != nil {
			return Removal{}, err
		}
		objs = append(objs, o...)
	}
	removed := make([]bool, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(removeConcurrency)
	for i, o := range objs {
		if dryRun || gctx.Err() != nil {
			removed[i] = dryRun
			continue
		}
		g.Go(func() error {
			if err := blobs.Delete(gctx, o.Key); err != nil {
				return err
			}
			removed[i] = true
			return nil
		})
	}
	err := g.Wait()
	var r Removal
	for i, o := range objs {
		if removed[i] {
			r.Objects = append(r.Objects, o)
			r.Bytes += o.Size
		}
	}
	return r, err
}

// batchEnded drops the batch's spool state and applies the retention of intermediates when a batch ends:
// with a period of zero (the default) they go now; otherwise `sluice gc`
// or the bucket's lifecycle rules remove them later. A failure here only
// leaves files for gc, so it is logged, not returned.
func (d *Deps) batchEnded(ctx context.Context, b sluice.Batch, now time.Time) {
	d.dropSpool(ctx, b.ID) // the merge dropped it, unless a crash came first
	if d.Config == nil || !d.Config.Retention.Intermediates.Expired(now, now) {
		return
	}
	r, err := RemovePrefixes(ctx, d.Blobs, IntermediatePrefixes(b), false)
	log := batchLog(d.log(), b.ID)
	if err != nil {
		log.WarnContext(ctx, "removing the batch's intermediates; `sluice gc` will", "err", err)
		return
	}
	log.InfoContext(ctx, "removed the batch's intermediates", "objects", len(r.Objects), "bytes", r.Bytes)
}
