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
	// Drop removes a batch's spool files (those not moved to their keys)
	// and state, and stops its waiters: when the batch fails, and when it
	// leaves merging (its files are at their keys by then).
	Drop(ctx context.Context, batchID string) error
	// Has says whether the batch has a spool state: the chunks already
	// spooled decide how the batch goes on, not the configuration now.
	Has(ctx context.Context, batchID string) (bool, error)
}

// SpoolError is a spool that cannot give the batch's files right (a chunk
// retried with other bytes, a spool file cut short): no retry mends it, so
// the batch fails with Reason.
type SpoolError struct{ Reason string }

func (e *SpoolError) Error() string { return e.Reason }

// SpoolFile is one of a batch's two spooled files.
type SpoolFile struct {
	Key    string // the merged object: output.csv or errors.csv
	Spool  string // where it grows meanwhile (SpoolPrefix)
	Header []byte
	Part   func(chunk int) string // the chunk's part, when it fell back to one
}

// SpoolBatch is what the spool needs of a batch: its files, output first,
// the fault hook of the spool's crash points, and Live, which says whether
// the batch may still get a spool (not merged, not failed): a late chunk of
// an ended batch must not start one again.
type SpoolBatch struct {
	ID    string
	Files [2]SpoolFile
	Fault func(point string) error
	Live  func(ctx context.Context) (bool, error)
}

// SpoolPrefix holds a batch's spool files while they grow.
func SpoolPrefix(id string) string { return id + "/output/spool/" }

// spoolFor is the batch's spool, when the configuration gives it one. Only
// plain CSV is spooled (the other formats are encoded at the merge), and
// only when a retried chunk gives the same bytes: no HTTP reference (its
// answers may change between attempts), and a pinned reference version
// when enriching. A batch whose spool exists already keeps it whatever the
// configuration says now (spooled).
func (d *Deps) spoolFor(b sluice.Batch) (SpoolBatch, bool) {
	cfg := d.Config
	if d.Spool == nil || cfg.OutputFormat() != config.FormatCSV || cfg.OutputCompression() != config.CompressNone ||
		cfg.Reference.HTTP != nil || (cfg.Enriches() && b.RefVersion == "") {
		return SpoolBatch{}, false
	}
	return d.spoolBatch(b, OutputKeyFor(cfg, b)), true
}

// spooled is the batch's spool when the configuration gives it one or
// when it has one already (a configuration changed while the batch ran):
// its chunks then still go to the spool, where a retried chunk whose bytes
// differ fails the batch instead of being counted apart from its bytes.
func (d *Deps) spooled(ctx context.Context, b sluice.Batch) (SpoolBatch, bool, error) {
	if sb, ok := d.spoolFor(b); ok || d.Spool == nil {
		return sb, ok, nil
	}
	has, err := d.Spool.Has(ctx, b.ID)
	if err != nil || !has {
		return SpoolBatch{}, false, err
	}
	return d.spoolBatch(b, SpoolPrefix(b.ID)+"sealed/output.csv"), true, nil
}

// spoolBatch is b's spool with its output finalised at outKey.
func (d *Deps) spoolBatch(b sluice.Batch, outKey string) SpoolBatch {
	cfg := d.Config
	return SpoolBatch{
		ID: b.ID,
		Files: [2]SpoolFile{
			{Key: outKey, Spool: SpoolPrefix(b.ID) + "output.csv",
				Header: csvscan.AppendStrings(nil, OutputHeader(cfg, b.Header), cfg.Delim()),
				Part:   func(i int) string { return OutputPartKey(b, i) }},
			{Key: ErrorsKey(b), Spool: SpoolPrefix(b.ID) + "errors.csv",
				Header: csvscan.AppendStrings(nil, ErrorReportHeader, ','),
				Part:   func(i int) string { return ErrorPartKey(b, i) }},
		},
		Fault: d.fault,
		Live:  func(ctx context.Context) (bool, error) { return d.spoolLive(ctx, b.ID) },
	}
}

// spoolLive: a batch may start a spool until it is merged or failed.
func (d *Deps) spoolLive(ctx context.Context, id string) (bool, error) {
	b, err := sluice.GetBatchFields(ctx, d.Ledger, id)
	if err != nil {
		return false, err
	}
	switch b.State {
	case sluice.StateSplitting, sluice.StateProcessing, sluice.StateMerging:
		return true, nil
	}
	return false, nil
}

// dropSpool removes the spool of a batch that failed or left merging, so
// its waiting workers stop at once, its files do not wait for retention,
// and a long-running engine keeps no state row per batch it ever ran.
func (d *Deps) dropSpool(ctx context.Context, id string) {
	if d.Spool == nil {
		return
	}
	if err := d.Spool.Drop(ctx, id); err != nil {
		batchLog(d.log(), id).WarnContext(ctx, "removing the spool of an ended batch", "err", err)
	}
}
