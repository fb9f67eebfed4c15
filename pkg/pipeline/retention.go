package pipeline

import (
	"context"
	"time"

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

// RemovePrefixes deletes every object under the prefixes, or only lists
// them when dryRun is set.
func RemovePrefixes(ctx context.Context, blobs sluice.BlobStore, prefixes []string, dryRun bool) (Removal, error) {
	var r Removal
	for _, p := range prefixes {
		objs, err := blobs.List(ctx, p)
		if err != nil {
			return r, err
		}
		for _, o := range objs {
			if !dryRun {
				if err := blobs.Delete(ctx, o.Key); err != nil {
					return r, err
				}
			}
			r.Objects = append(r.Objects, o)
			r.Bytes += o.Size
		}
	}
	return r, nil
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
