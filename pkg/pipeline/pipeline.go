// Package pipeline holds the four stages — split, process, merge, notify —
// written only against the ports of package sluice. Each stage is a handler
// from one queue message to an error; the consumer runtime receives, retries
// and dead-letters around it. Every handler is idempotent: a redelivered
// message rewrites the same objects, counts nothing twice, and sends at most
// a message the next stage already tolerates twice.
package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/format"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// Deps is what the stages need. Queues are where a stage sends: the
// splitter sends to Chunks, the worker to Merges, the merger to Notifies.
type Deps struct {
	Blobs   sluice.BlobStore
	Ledger  sluice.Ledger
	Catalog sluice.Catalog // nil when the configuration enriches nothing
	// Datasets opens a named reference dataset's catalog (wire.Ports.Catalogs);
	// nil: only the default dataset, Catalog, exists.
	Datasets func(name string) (sluice.Catalog, error)
	Mailer   sluice.Mailer
	Chunks   sluice.Queue
	Merges   sluice.Queue
	Notifies sluice.Queue
	// Scans is where the splitter sends a huge input's scan ranges: its
	// own ingest queue (scansplit.go).
	Scans sluice.Queue
	// Deliveries is where the merger sends one message per (batch, sink).
	Deliveries sluice.Queue
	// Sink finds a feed's configured sink by name (wire.Ports.Sink); nil
	// when no feed delivers.
	Sink   func(feed, name string) (sluice.Sink, error)
	Config *config.Pipeline
	Logger *slog.Logger
	// Fault, when set, is called at every step boundary (see Points); an
	// error it returns stops the handler there, as a crash would.
	Fault func(point string) error
	Now   func() time.Time
	// Recorder, when set, hears rows, bytes and batch ends (for metrics).
	Recorder Recorder

	// HTTPCatalog is the HTTP API catalog of a feed whose reference is
	// reference.http (wire.Ports.HTTPCatalog).
	HTTPCatalog func(feed string) (sluice.Catalog, error)

	// Spool, when set, takes the chunks' plain CSV output in place of
	// their parts (spool.go); nil on AWS.
	Spool Spool
}

// Recorder receives the stages' measurements. Labels are bounded: stages,
// results, rules, directions, states.
type Recorder interface {
	Rows(stage, result string, n int)
	Rejected(rule string, n int)
	Bytes(stage, direction string, n int64)
	BatchEnded(state sluice.State, d time.Duration)
}

// FeedRecorder is a Recorder that labels what it hears with a feed; the
// stages use the view of the batch's feed. Labels stay bounded: feeds
// come from the configuration.
type FeedRecorder interface {
	ForFeed(feed string) Recorder
}

type noRecorder struct{}

func (noRecorder) Rows(string, string, int)               {}
func (noRecorder) Rejected(string, int)                   {}
func (noRecorder) Bytes(string, string, int64)            {}
func (noRecorder) BatchEnded(sluice.State, time.Duration) {}

func (d *Deps) rec() Recorder {
	if d.Recorder != nil {
		return d.Recorder
	}
	return noRecorder{}
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now().UTC()
	}
	return time.Now().UTC()
}

func (d *Deps) log() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}

func (d *Deps) fault(p string) error {
	if d.Fault == nil {
		return nil
	}
	if err := d.Fault(p); err != nil {
		return fmt.Errorf("fault injected at %s: %w", p, err)
	}
	return nil
}

// The step boundaries where a fault can be injected, in pipeline order.
const (
	PointSplitAfterCreate    = "split.after_create"     // batch record created, nothing split
	PointSplitAfterChunkPut  = "split.after_chunk_put"  // a chunk written, its message not sent
	PointSplitAfterChunkSend = "split.after_chunk_send" // a chunk's message sent
	PointSplitAfterTotal     = "split.after_total"      // total recorded, merge message not sent
	PointSplitAfterArchive   = "split.after_archive"    // input archived, batch still "splitting"
	PointSplitAfterScanSend  = "split.after_scan_send"  // a huge input's scan ranges sent, the event not acknowledged
	PointScanAfterSummary    = "scan.after_summary"     // a range's summary stored, the range not counted
	PointScanAfterCount      = "scan.after_count"       // a range counted, the stitch not begun
	PointWorkAfterParts      = "work.after_parts"       // output and error parts (or the spool) written, ledger untouched
	PointSpoolAfterWrite     = "spool.after_write"      // a chunk's bytes in the spool, its spool state not recorded
	PointSpoolAfterStart     = "spool.after_start"      // a batch's spool files started with their headers, no state recorded
	PointSpoolAfterFinal     = "spool.after_final"      // the spool's digests recorded, its files not moved to their keys
	PointSpoolAfterRename    = "spool.after_rename"     // the spooled output moved to its key, the error report not
	PointWorkAfterRejects    = "work.after_rejects"     // rejected rows in the ledger, chunk not counted
	PointWorkAfterCount      = "work.after_count"       // chunk counted, merge message not sent
	PointMergeAfterOutput    = "merge.after_output"     // merged output written, error report not
	PointMergeAfterManifest  = "merge.after_manifest"   // manifest written, batch not moved on
	PointMergeAfterState     = "merge.after_state"      // batch "notifying", notify message not sent
	PointNotifyAfterSend     = "notify.after_send"      // email sent, not recorded

	PointMergeAfterDeliveries = "merge.after_deliveries_sent" // delivery messages sent, notify message not
	PointDeliverBeforeSend    = "deliver.before_send"         // delivery message received, nothing delivered
	PointDeliverAfterSend     = "deliver.after_send"          // delivered, not recorded
)

// Points lists every fault point.
var Points = []string{
	PointSplitAfterCreate, PointSplitAfterChunkPut, PointSplitAfterChunkSend, PointSplitAfterTotal, PointSplitAfterArchive,
	PointSplitAfterScanSend, PointScanAfterSummary, PointScanAfterCount,
	PointWorkAfterParts, PointWorkAfterRejects, PointWorkAfterCount,
	PointMergeAfterOutput, PointMergeAfterManifest, PointMergeAfterState,
	PointNotifyAfterSend,
}

// DeliveryPoints are the fault points of delivery. They are apart from
// Points because a batch reaches them only when its feed has sinks; the
// crash tests of delivery run them with a sink configured.
var DeliveryPoints = []string{PointMergeAfterDeliveries, PointDeliverBeforeSend, PointDeliverAfterSend}

// SpoolPoints are the fault points of the spool (spool.go). They are apart
// from Points because only the embedded engine spools; its crash tests
// (pkg/embedded, cmd/sluice) run them too.
var SpoolPoints = []string{PointSpoolAfterStart, PointSpoolAfterWrite, PointSpoolAfterFinal, PointSpoolAfterRename}

// Key layout in the bucket, as in the original sample.
const (
	InputPrefix   = "input/"
	ArchivePrefix = "input_archive/"
)

// stem is a file name without its extension: orders.csv → orders.
func stem(name string) string {
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		return name[:i]
	}
	return name
}

// A batch's artefacts live under its ID and are named by chunk number, never
// by the file name: a name may be up to ~1,018 bytes on S3, which would
// break the 255-byte limit of one path element locally and the 1,024-byte
// key limit with a prefix. The name stays in the batch record and is used
// only for what a person downloads (DownloadName).

// ChunkKey is where the splitter writes chunk i.
func ChunkKey(b sluice.Batch, i int) string {
	return fmt.Sprintf("%s/to_process/part%05d.csv", b.ID, i)
}

// OutputPartKey is where the worker writes chunk i's valid rows.
func OutputPartKey(b sluice.Batch, i int) string {
	return fmt.Sprintf("%s/output/parts/part%05d.csv", b.ID, i)
}

// ErrorPartKey is where the worker writes chunk i's rejected rows.
func ErrorPartKey(b sluice.Batch, i int) string {
	return fmt.Sprintf("%s/output/errors/part%05d.csv", b.ID, i)
}

// OutputKey, ErrorsKey and ManifestKey are the merger's outputs.
func OutputKey(b sluice.Batch) string { return b.ID + "/output/completed/output.csv" }

// OutputKeyFor is the merged output's key in the configured format:
// output.csv as before, or output.jsonl.gz, output.parquet and so on.
func OutputKeyFor(cfg *config.Pipeline, b sluice.Batch) string {
	return b.ID + "/output/completed/output." + format.Ext(cfg)
}
func ErrorsKey(b sluice.Batch) string   { return b.ID + "/output/completed/errors.csv" }
func ManifestKey(b sluice.Batch) string { return b.ID + "/output/completed/manifest.json" }

// DownloadName is the file name a person gets for one of the batch's
// outputs (key): named after the input, orders.csv → orders.errors.csv.
func DownloadName(b sluice.Batch, key string) string {
	s := stem(b.Name)
	switch key {
	case OutputKey(b):
		return s + ".csv"
	case ErrorsKey(b):
		return s + ".errors.csv"
	case b.OutputKey:
		if rest, ok := strings.CutPrefix(key, b.ID+"/output/completed/output."); ok {
			return s + "." + rest // output.parquet → orders.parquet
		}
	case ManifestKey(b):
		return s + ".manifest.json"
	}
	return path.Base(key)
}

// ArchiveKey is where the input goes once split: under the batch's ID, so
// a later file of the same name never overwrites it, and under a bounded
// form of its name (SafeName).
func ArchiveKey(b sluice.Batch) string { return ArchivePrefix + b.ID + "/" + SafeName(b.Name) }

// MaxNameBytes bounds a file name used as one element of a key, well
// under the 255 bytes a local file system allows in one path element.
const MaxNameBytes = 160

// SafeName is name as one bounded key element: the name itself when it is
// short, otherwise its first bytes (cut on a character boundary), a hash of
// the whole name, so two long names never meet, and its extension.
func SafeName(name string) string {
	if name == "" {
		return "input"
	}
	if len(name) <= MaxNameBytes {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	ext := path.Ext(name)
	if len(ext) > 16 {
		ext = ""
	}
	keep := MaxNameBytes - len(ext) - 18 // "~" and 16 hex digits, and one to spare
	for keep > 0 && !utf8.RuneStart(name[keep]) {
		keep--
	}
	return name[:keep] + "~" + hex.EncodeToString(sum[:8]) + ext
}

// Where says where a person finds an object: its file path in a local
// bucket, an s3:// URI otherwise.
func Where(blobs sluice.BlobStore, key string) string {
	if key == "" {
		return ""
	}
	if fs, ok := blobs.(interface{ Path(string) (string, error) }); ok {
		if p, err := fs.Path(key); err == nil {
			return p
		}
	}
	return S3URI(blobs.Bucket(), key)
}

// S3URI is the s3:// URI of key in bucket.
func S3URI(bucket, key string) string { return "s3://" + bucket + "/" + key }

// ErrorReportHeader is the error report's header row.
var ErrorReportHeader = []string{"line", "column", "rule", "message", "row"}

// OutputHeader is the header of the output: the input's, then the
// appended reference columns.
func OutputHeader(cfg *config.Pipeline, input []string) []string {
	out := append([]string(nil), input...)
	if cfg.Enriches() {
		out = append(out, cfg.Reference.Append...)
	}
	return out
}

func batchLog(l *slog.Logger, id string) *slog.Logger { return l.With("batch_id", id) }

// fail ends a batch for a reason a person can act on, archives its input so
// nothing is lost, and tells the notifier so the email says why.
func (d *Deps) fail(ctx context.Context, b sluice.Batch, reason string) error {
	batchLog(d.log(), b.ID).WarnContext(ctx, "batch failed", "reason", reason, "key", b.Key)
	if _, err := d.Ledger.UpdateBatch(ctx, b.ID, sluice.BatchUpdate{State: sluice.StateFailed, Reason: reason}); err != nil {
		return err
	}
	d.dropSpool(ctx, b.ID)
	if err := d.archive(ctx, b); err != nil {
		return err
	}
	return d.Notifies.Send(ctx, sluice.Encode(sluice.BatchReady{Version: sluice.MessageVersion, BatchID: b.ID}))
}

// archive moves the input to input_archive/ (copy, then delete). It is a
// no-op when the input is already gone, so a retry after a crash is safe,
// and when input/<key> now holds another upload of the same name (another
// ETag): that upload is another batch's input, never this one's archive.
func (d *Deps) archive(ctx context.Context, b sluice.Batch) error {
	ours, err := d.inputIsOurs(ctx, b)
	if err != nil || !ours {
		return err
	}
	if err := d.Blobs.Copy(ctx, b.Key, ArchiveKey(b)); err != nil {
		return fmt.Errorf("archiving %s: %w", b.Key, err)
	}
	return d.removeInput(ctx, b)
}

// inputIsOurs says whether input/<key> still holds the batch's own upload.
// Once a batch has archived and removed its input the key is free, and a
// new upload of the same name (another ETag) belongs to another batch. The
// BlobStore port has no conditional copy or delete, so this is a Stat and a
// compare: a new upload landing between the Stat and the Copy or Delete
// still races it, a window of one request instead of the whole split.
func (d *Deps) inputIsOurs(ctx context.Context, b sluice.Batch) (bool, error) {
	info, err := d.Blobs.Stat(ctx, b.Key)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return b.ETag == "" || info.ETag == b.ETag, nil
}

// removeInput deletes input/<key> when it is still the batch's upload and
// leaves another upload of the same name alone.
func (d *Deps) removeInput(ctx context.Context, b sluice.Batch) error {
	ours, err := d.inputIsOurs(ctx, b)
	if err != nil || !ours {
		return err
	}
	if err := d.Blobs.Delete(ctx, b.Key); err != nil {
		return fmt.Errorf("archiving %s: %w", b.Key, err)
	}
	return nil
}

// getRange reads n bytes at off of key, which must still have the ETag
// etag when one is given: range messages name the archive they were cut
// from, and an archive replaced since (by another file) must fail the
// batch with a clear reason instead of feeding it another file's bytes.
// The BlobStore port has no If-Match on a ranged read, so this is a Stat
// and a compare first (the archive key is written only by its batch's
// split, so the window is that of a replayed split, now refused by source).
func (d *Deps) getRange(ctx context.Context, key, etag string, off, n int64) (io.ReadCloser, error) {
	if etag != "" {
		info, err := d.Blobs.Stat(ctx, key)
		if err != nil {
			return nil, err
		}
		if info.ETag != etag {
			return nil, sluice.Permanentf("%s is not the file the split cut (ETag %s, the split's %s): it was replaced, so the batch cannot be read", key, info.ETag, etag)
		}
	}
	return d.Blobs.GetRange(ctx, key, off, n)
}

func isNotFound(err error) bool { return errors.Is(err, sluice.ErrNotFound) }
