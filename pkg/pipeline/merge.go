package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/csvscan"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// Merger joins a batch's parts into one output and one error report.
type Merger struct{ *Deps }

// Manifest describes a merged batch.
type Manifest struct {
	BatchID      string               `json:"batchId"`
	Feed         string               `json:"feed,omitempty"`
	Input        string               `json:"input"`
	Archived     string               `json:"archived"`
	Chunks       int                  `json:"chunks"`
	RowsIn       int                  `json:"rowsIn"`
	RowsOut      int                  `json:"rowsOut"`
	RowsRejected int                  `json:"rowsRejected"`
	Reasons      []sluice.ReasonCount `json:"reasons"`
	Seconds      map[string]float64   `json:"seconds"`
	Output       FileDigest           `json:"output"`
	Errors       FileDigest           `json:"errors"`
}

// FileDigest names an output and proves its content.
type FileDigest struct {
	Key    string `json:"key"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Handle implements the merge stage for one batch-ready message.
func (m Merger) Handle(ctx context.Context, msg sluice.Message) error {
	var br sluice.BatchReady
	if err := sluice.Decode(msg.Body, &br); err != nil {
		return err
	}
	return m.Merge(ctx, br.BatchID)
}

// Merge merges one batch. It can run any number of times.
func (m Merger) Merge(ctx context.Context, id string) error {
	b, err := m.Ledger.GetBatch(ctx, id)
	if isNotFound(err) {
		return sluice.PermanentReason(sluice.ReasonUnknownBatch, fmt.Errorf("merge message for batch %q, which does not exist", id))
	}
	if err != nil {
		return err
	}
	log := batchLog(m.log(), id)
	if replayed, err := m.replay(ctx, b); replayed {
		return err
	}
	if b.TotalChunks < 0 || b.DoneChunks < b.TotalChunks {
		return sluice.PermanentReason(sluice.ReasonBadState, fmt.Errorf("merge message for batch %q with %d of %d chunks done", id, b.DoneChunks, b.TotalChunks))
	}
	fd, err := m.batchFeed(ctx, b)
	if errors.Is(err, errBatchFailed) {
		return nil
	}
	if err != nil {
		return err
	}
	m = Merger{fd} // the batch's feed: its delimiter, appends and limits
	if _, err := m.Ledger.UpdateBatch(ctx, id, sluice.BatchUpdate{State: sluice.StateMerging}); err != nil {
		return err
	}
	out, errs, err := m.outputs(ctx, b)
	if se := (*SpoolError)(nil); errors.As(err, &se) {
		return m.fail(ctx, b, se.Reason)
	}
	if err != nil {
		return err
	}
	now := m.now()
	man := Manifest{
		BatchID: id, Feed: b.Feed, Input: b.Key, Archived: ArchiveKey(b), Chunks: b.TotalChunks,
		RowsIn: b.RowsIn, RowsOut: b.RowsOut, RowsRejected: b.RowsRejected, Reasons: b.TopReasons(0),
		Seconds: Durations(b, now), Output: out, Errors: errs,
	}
	js, _ := json.MarshalIndent(man, "", "  ")
	if _, err := m.Blobs.Put(ctx, ManifestKey(b), bytes.NewReader(append(js, '\n'))); err != nil {
		return err
	}
	if err := m.fault(PointMergeAfterManifest); err != nil {
		return err
	}
	upd := sluice.BatchUpdate{
		State: sluice.StateNotifying, OutputKey: out.Key, ErrorsKey: errs.Key, ManifestKey: ManifestKey(b), MergedAt: now,
	}
	if reason := rejectRateExceeded(m.Config.Limits.MaxRejectRate, b); reason != "" {
		// Merged all the same: the error report is what the person needs.
		upd.State, upd.Reason = sluice.StateFailed, reason
		log.WarnContext(ctx, "batch failed", "reason", reason)
	}
	if _, err := m.Ledger.UpdateBatch(ctx, id, upd); err != nil {
		return err
	}
	m.dropSpool(ctx, id) // its files are at their keys; batchEnded drops it too, after a crash here
	if err := m.fault(PointMergeAfterState); err != nil {
		return err
	}
	m.rec().Bytes("merge", "written", out.Bytes+errs.Bytes)
	log.InfoContext(ctx, "merged", "rows_out", b.RowsOut, "rows_rejected", b.RowsRejected, "output", out.Key)
	if upd.State == sluice.StateNotifying {
		// Before the notify message: once the notifier completes the
		// batch, a redelivered merge message is ignored, so the delivery
		// messages must already be out by then.
		if err := m.sendDeliveries(ctx, b); err != nil {
			return err
		}
	}
	return m.sendNotify(ctx, id)
}

// replay handles a merge message for a batch merged or ended before:
// it re-sends what may have been lost after the merge, or ignores it.
// replayed is false for a batch still to be merged.
func (m Merger) replay(ctx context.Context, b sluice.Batch) (replayed bool, err error) {
	switch {
	case b.State == sluice.StateFailed && !b.MergedAt.IsZero() && b.EmailID == "":
		return true, m.sendNotify(ctx, b.ID) // failed by the merge (reject rate); the notify message may be lost
	case b.State.Terminal():
		batchLog(m.log(), b.ID).InfoContext(ctx, "merge message for a finished batch; ignored", "state", b.State)
		return true, nil
	case b.State == sluice.StateNotifying:
		// Merged before; the delivery and notify messages may be lost.
		if err := m.sendDeliveries(ctx, b); err != nil {
			return true, err
		}
		return true, m.sendNotify(ctx, b.ID)
	}
	return false, nil
}

func (m Merger) sendNotify(ctx context.Context, id string) error {
	return m.Notifies.Send(ctx, sluice.Encode(sluice.BatchReady{Version: sluice.MessageVersion, BatchID: id}))
}

// outputs writes the merged output and then the error report: the
// spool's two files finalised, or the parts joined.
//
// What exists decides, not the configuration now: a batch with a spool
// state is finalised from its spool (its fallen-back chunks' parts copied
// in), whatever the configuration says since; for another format the
// spooled output is then encoded like the parts would be.
func (m Merger) outputs(ctx context.Context, b sluice.Batch) (out, errs FileDigest, err error) {
	if sb, ok, err := m.spooled(ctx, b); err != nil || ok {
		if err != nil {
			return out, errs, err
		}
		d, err := m.Spool.Finalise(ctx, sb, b.TotalChunks)
		if err != nil {
			return out, errs, err
		}
		if d[0].Key != OutputKeyFor(m.Config, b) {
			if d[0], err = m.encodeSpooled(ctx, b, d[0].Key, int64(len(sb.Files[0].Header))); err != nil {
				return out, errs, err
			}
		}
		return d[0], d[1], m.fault(PointMergeAfterOutput)
	}
	if out, err = m.output(ctx, b); err != nil {
		return out, errs, err
	}
	if err := m.fault(PointMergeAfterOutput); err != nil {
		return out, errs, err
	}
	errHeader := csvscan.AppendStrings(nil, ErrorReportHeader, ',')
	errs, err = m.concat(ctx, ErrorsKey(b), errHeader, b.TotalChunks, func(i int) string { return ErrorPartKey(b, i) })
	return out, errs, err
}

// output writes the merged output in the configured format. Plain CSV is
// the parts concatenated, byte for byte as before; the other formats read
// the parts back in chunk order, so the output keeps the input's order.
func (m Merger) output(ctx context.Context, b sluice.Batch) (FileDigest, error) {
	hdr := OutputHeader(m.Config, b.Header)
	part := func(i int) string { return OutputPartKey(b, i) }
	key := OutputKeyFor(m.Config, b)
	if m.Config.OutputFormat() == config.FormatCSV && m.Config.OutputCompression() == config.CompressNone {
		return m.concat(ctx, key, csvscan.AppendStrings(nil, hdr, m.Config.Delim()), b.TotalChunks, part)
	}
	return m.encode(ctx, key, func(w io.Writer) error {
		return m.writeOutput(ctx, w, hdr, b.TotalChunks, part)
	})
}

// concat streams header + parts 0..n-1, in numeric order, into key. A
// store that composes objects does it without the bytes passing through.
func (m Merger) concat(ctx context.Context, key string, header []byte, n int, part func(int) string) (FileDigest, error) {
	if c, ok := m.Blobs.(sluice.Composer); ok {
		return m.compose(ctx, c, key, header, n, part)
	}
	h := sha256.New()
	pr := &partsReader{ctx: ctx, blobs: m.Blobs, header: header, n: n, part: part, hash: h}
	defer pr.close()
	info, err := m.Blobs.Put(ctx, key, pr)
	if err != nil {
		return FileDigest{}, fmt.Errorf("merging into %s: %w", key, err)
	}
	if info.Size != pr.size {
		return FileDigest{}, fmt.Errorf("merging into %s: stored %d bytes, wrote %d", key, info.Size, pr.size)
	}
	return FileDigest{Key: key, Bytes: pr.size, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// compose is concat by sluice.Composer. When the store did not hash what
// it stored, the output is read back for its digest: a GET, which costs
// far less than the PUT of every byte it replaces.
func (m Merger) compose(ctx context.Context, c sluice.Composer, key string, header []byte, n int, part func(int) string) (FileDigest, error) {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = part(i)
	}
	info, sum, err := c.Compose(ctx, key, header, parts)
	if err != nil {
		return FileDigest{}, fmt.Errorf("merging into %s: %w", key, err)
	}
	if sum == "" {
		r, err := m.Blobs.Get(ctx, key)
		if err != nil {
			return FileDigest{}, fmt.Errorf("merging into %s: reading it back: %w", key, err)
		}
		defer r.Close()
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return FileDigest{}, fmt.Errorf("merging into %s: reading it back: %w", key, err)
		}
		sum = hex.EncodeToString(h.Sum(nil))
	}
	return FileDigest{Key: key, Bytes: info.Size, SHA256: sum}, nil
}

// partsReader yields the header and then each part, opening one at a
// time, so the merge holds one read buffer whatever the output's size.
type partsReader struct {
	ctx    context.Context
	blobs  sluice.BlobStore
	header []byte
	n      int
	part   func(int) string
	hash   hash.Hash

	next int
	cur  io.ReadCloser
	size int64
}

func (p *partsReader) Read(b []byte) (int, error) {
	for {
		if len(p.header) > 0 {
			n := copy(b, p.header)
			p.header = p.header[n:]
			return p.count(b[:n]), nil
		}
		if p.cur == nil {
			if p.next == p.n {
				return 0, io.EOF
			}
			r, err := p.blobs.Get(p.ctx, p.part(p.next))
			if err != nil {
				return 0, fmt.Errorf("part %d: %w", p.next, err)
			}
			p.cur = r
			p.next++
		}
		n, err := p.cur.Read(b)
		if err == io.EOF {
			p.cur.Close()
			p.cur = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return p.count(b[:n]), err
	}
}

func (p *partsReader) count(b []byte) int {
	p.hash.Write(b)
	p.size += int64(len(b))
	return len(b)
}

func (p *partsReader) close() {
	if p.cur != nil {
		p.cur.Close()
	}
}

// RejectRate is the fraction of the batch's rows that were rejected.
func RejectRate(b sluice.Batch) float64 {
	if b.RowsIn == 0 {
		return 0
	}
	return float64(b.RowsRejected) / float64(b.RowsIn)
}

// RejectsDominate reports whether a batch rejected more rows than it
// passed: with or without a limit, that is flagged to the person.
func RejectsDominate(b sluice.Batch) bool { return b.RowsRejected > b.RowsOut }

// rejectRateExceeded is the reason a batch fails under limits.maxRejectRate,
// or "" when it does not.
func rejectRateExceeded(limit *float64, b sluice.Batch) string {
	if limit == nil || b.RowsIn == 0 || RejectRate(b) <= *limit {
		return ""
	}
	return fmt.Sprintf("%s of rows were rejected (limit %s, limits.maxRejectRate): %d of %d; the error report says which and why",
		percent(RejectRate(b)), percent(*limit), b.RowsRejected, b.RowsIn)
}

// percent shows a fraction as a percentage with at most one decimal,
// rounded up, so a rate just over a limit never reads as equal to it:
// 0.97 → 97%, 0.5005 → 50.1%.
func percent(f float64) string {
	p := math.Ceil(f*1000-1e-9) / 10
	if p == math.Trunc(p) {
		return strconv.FormatFloat(p, 'f', 0, 64) + "%"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

// Durations are the seconds each stage took, as far as the batch got.
func Durations(b sluice.Batch, now time.Time) map[string]float64 {
	d := map[string]float64{}
	sec := func(from, to time.Time) float64 { return to.Sub(from).Seconds() }
	if !b.SplitAt.IsZero() {
		d["split"] = sec(b.CreatedAt, b.SplitAt)
	}
	if !b.ProcessAt.IsZero() {
		d["process"] = sec(b.CreatedAt, b.ProcessAt)
	}
	if !b.ProcessAt.IsZero() && !b.MergedAt.IsZero() {
		d["merge"] = sec(b.ProcessAt, b.MergedAt)
	} else if !b.ProcessAt.IsZero() {
		d["merge"] = sec(b.ProcessAt, now)
	}
	if !b.MergedAt.IsZero() && !b.NotifiedAt.IsZero() {
		d["notify"] = sec(b.MergedAt, b.NotifiedAt)
	}
	end := b.NotifiedAt
	if end.IsZero() {
		end = now
	}
	d["total"] = sec(b.CreatedAt, end)
	return d
}

// encodeSpooled writes the output in the configured format from a spooled
// plain CSV output at key (its header line, hdrLen bytes, skipped), as
// output does from the parts: a batch spooled before its configuration
// changed to another format.
func (m Merger) encodeSpooled(ctx context.Context, b sluice.Batch, key string, hdrLen int64) (FileDigest, error) {
	m.Blobs = skipHead{BlobStore: m.Blobs, key: key, off: hdrLen}
	return m.encode(ctx, OutputKeyFor(m.Config, b), func(w io.Writer) error {
		return m.writeOutput(ctx, w, OutputHeader(m.Config, b.Header), 1, func(int) string { return key })
	})
}

// skipHead is a blob store whose object key is read from off on.
type skipHead struct {
	sluice.BlobStore
	key string
	off int64
}

func (s skipHead) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := s.BlobStore.Get(ctx, key)
	if err != nil || key != s.key {
		return r, err
	}
	if _, err := io.CopyN(io.Discard, r, s.off); err != nil {
		r.Close()
		return nil, fmt.Errorf("%s: its header: %w", key, err)
	}
	return r, nil
}
