package pipeline

import (
	"context"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/csvscan"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// Spool writes a batch's plain CSV output and error report in place, in
// chunk order, as the workers finish, so the merge only finalises them
// (pkg/spool; the embedded engine's, nil on AWS). The bytes a chunk
// appends must be the bytes its part would hold, whichever attempt wrote
// them: spoolFor says when they are (docs/exactly-once.md, "The spool").
type Spool interface {
	// Append writes a chunk's output and error rows at the spool's end
	// once chunks 0..chunk-1 are in, waiting a bounded time for them. ok
	// is false when it did not write them (the wait ran out, or the batch
	// was dropped): the worker then stores the chunk's parts, which the
	// spool copies in when it reaches them. A chunk already in the spool
	// is not written again, and ok is true.
	Append(ctx context.Context, s SpoolBatch, chunk int, out, errs []byte) (ok bool, err error)
	// Parted tells the spool that chunk's parts are stored, so it copies
	// in what it can and wakes the chunks waiting behind it.
	Parted(ctx context.Context, s SpoolBatch, chunk int) error
	// Finalise copies in the parts of the chunks not yet in, then moves
	// both files to their keys; it returns their digests (output, errors).
	// It can run any number of times.
	Finalise(ctx context.Context, s SpoolBatch, total int) ([2]FileDigest, error)
	// Drop removes a batch's spool files and state, and stops its waiters.
	Drop(ctx context.Context, batchID string) error
}

// SpoolFile is one of a batch's two spooled files.
type SpoolFile struct {
	Key    string // the merged object: output.csv or errors.csv
	Spool  string // where it grows meanwhile (SpoolPrefix)
	Header []byte
	Part   func(chunk int) string // the chunk's part, when it fell back to one
}

// SpoolBatch is what the spool needs of a batch: its files, output first,
// and the fault hook between a chunk's spool write and its state record.
type SpoolBatch struct {
	ID    string
	Files [2]SpoolFile
	Fault func(point string) error
}

// SpoolPrefix holds a batch's spool files while they grow.
func SpoolPrefix(id string) string { return id + "/output/spool/" }

// spoolFor is the batch's spool, when it has one. Only plain CSV is
// spooled (the other formats are encoded at the merge), and only when a
// retried chunk gives the same bytes: no HTTP reference (its answers may
// change between attempts), and a pinned reference version when enriching.
func (d *Deps) spoolFor(b sluice.Batch) (SpoolBatch, bool) {
	cfg := d.Config
	if d.Spool == nil || cfg.OutputFormat() != config.FormatCSV || cfg.OutputCompression() != config.CompressNone ||
		cfg.Reference.HTTP != nil || (cfg.Enriches() && b.RefVersion == "") {
		return SpoolBatch{}, false
	}
	return SpoolBatch{
		ID: b.ID,
		Files: [2]SpoolFile{
			{Key: OutputKeyFor(cfg, b), Spool: SpoolPrefix(b.ID) + "output.csv",
				Header: csvscan.AppendStrings(nil, OutputHeader(cfg, b.Header), cfg.Delim()),
				Part:   func(i int) string { return OutputPartKey(b, i) }},
			{Key: ErrorsKey(b), Spool: SpoolPrefix(b.ID) + "errors.csv",
				Header: csvscan.AppendStrings(nil, ErrorReportHeader, ','),
				Part:   func(i int) string { return ErrorPartKey(b, i) }},
		},
		Fault: d.fault,
	}, true
}

// dropSpool removes a failed batch's spool, so its waiting workers stop
// at once and its files do not wait for retention.
func (d *Deps) dropSpool(ctx context.Context, id string) {
	if d.Spool == nil {
		return
	}
	if err := d.Spool.Drop(ctx, id); err != nil {
		batchLog(d.log(), id).WarnContext(ctx, "removing the spool of a failed batch", "err", err)
	}
}
