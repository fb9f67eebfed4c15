package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/sluicehq/sluice/pkg/csvscan"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// The scan split: a huge input split by several tasks, so that one 50 GB
// object is not held to one stream.
//
//  1. The split task that receives the object (fanOut) archives it, reads and
//     records the header, deletes the input, and sends one ScanRange message
//     per range of scanSplit.rangeBytes to the ingest queue: the split stage's
//     own queue, so no new queue or service, and the splitter's autoscaling
//     on that queue's depth adds tasks for a big file's ranges.
//  2. A task (scanRange) reads its range with a ranged GET, summarizes it
//     (csvscan.SummarizeRange: transition function, newline count, first and
//     last record ends, its whole records cut into chunks), stores the
//     summary as an object under the batch's to_process/, then counts the
//     range in the ledger (ScanRangeDone). Both are idempotent: the summary
//     is a function of the archive's bytes (read only while it has the ETag
//     the message carries) and of the settings the message carries, and the
//     count is conditional.
//  3. A task whose count finds the ranges complete while the batch is still
//     splitting (the one that completed them; a redelivery after a crash; a
//     retry whose first reply was lost) stitches: it composes
//     the summaries in order (csvscan.Stitch), sends the chunks' range
//     messages and finishes the split as the one-stream split does.
//
// A file the Scanner refuses (a quote never closed, a record too long) is
// found by the stitch, which then runs the Scanner over the object for the
// exact reason and line: one stream, but only for a file that fails.

// fansOut says whether the input r, of size bytes, is split by scan tasks.
// A local file fans out only when the configuration sets the threshold:
// FindCuts cuts it on every core in one process, without messages.
func (s Splitter) fansOut(r io.Reader, size int64) bool {
	min, set := s.Config.ScanSplit.Threshold()
	if size < min || s.Scans == nil {
		return false
	}
	if f, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok && !set {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// fanOut reads and records the header from r (the archive, already copied),
// removes the input and sends the scan messages. The batch stays
// "splitting" until the stitch.
func (s Splitter) fanOut(ctx context.Context, b sluice.Batch, r io.Reader) error {
	info, err := s.Blobs.Stat(ctx, ArchiveKey(b))
	if err != nil {
		return err
	}
	start, line, err := s.scanHeader(ctx, b, r)
	var bad *badFile
	if errors.As(err, &bad) {
		return s.fail(ctx, b, bad.reason)
	}
	if err != nil {
		return err
	}
	if err := s.removeInput(ctx, b); err != nil {
		return err
	}
	if start >= info.Size {
		// The header is the whole file: no rows, nothing to scan.
		return s.finish(ctx, b, splitResult{}, true, inputRemoved)
	}
	step := s.Config.ScanSplit.Range()
	n := int((info.Size - start + step - 1) / step)
	if n > sluice.MaxScanRanges {
		// The configuration refuses such limits; a file over them that
		// got here anyway fails with the reason, not in the ledger.
		return s.fail(ctx, b, fmt.Sprintf("the file is %d bytes: %d scan ranges of %d bytes, over the %d a split may have (scanSplit.rangeBytes, limits.maxFileBytes)", info.Size, n, step, sluice.MaxScanRanges))
	}
	// Sent as they are built, fanOutBatch at a time: a 50 GB file's
	// messages are not all held at once, and the first tasks start early.
	msgs := make([][]byte, 0, min(n, fanOutBatch))
	for i := range n {
		off := start + int64(i)*step
		msgs = append(msgs, sluice.Encode(sluice.ScanRange{Version: sluice.MessageVersion, Kind: sluice.KindScanRange,
			BatchID: b.ID, Input: ArchiveKey(b), Range: i, Ranges: n, Offset: off, Length: min(step, info.Size-off),
			Start: start, Line: line, Size: info.Size, ETag: info.ETag,
			Delim: string(s.Config.Delim()), ChunkRows: s.Config.ChunkRows, MaxLineBytes: s.Config.Limits.MaxLineBytes}))
		if len(msgs) == fanOutBatch || i == n-1 {
			if err := s.Scans.SendBatch(ctx, msgs); err != nil {
				return err
			}
			msgs = msgs[:0]
		}
	}
	batchLog(s.log(), b.ID).Info("split fanned out to scan tasks", "bytes", info.Size, "ranges", n)
	return s.fault(PointSplitAfterScanSend)
}

// fanOutBatch is how many scan messages fanOut sends in one SendBatch.
const fanOutBatch = 100

// scanHeader checks and records the header as cut does, and returns where
// the records after it start and on which line.
func (s Splitter) scanHeader(ctx context.Context, b sluice.Batch, r io.Reader) (start, line int64, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if err := sniff(br); err != nil {
		return 0, 0, err
	}
	sc := csvscan.NewScanner(br, s.Config.Delim(), s.Config.Limits.MaxLineBytes)
	h, err := s.header(ctx, b, sc)
	if err != nil {
		return 0, 0, err
	}
	// h is the header record with one LF for its line ending; a header
	// without one ends the file, and start is then the size.
	return sc.Offset(), sc.Line() + int64(bytes.Count(h, []byte{'\n'})), nil
}

// ScanKey is where range r's summary is kept until the batch ends.
func ScanKey(b sluice.Batch, r int) string {
	return fmt.Sprintf("%s/to_process/scan%05d.json", b.ID, r)
}

// scanRange handles one ScanRange message.
func (s Splitter) scanRange(ctx context.Context, m sluice.ScanRange, redelivered bool) error {
	b, err := s.Ledger.GetBatch(ctx, m.BatchID)
	if isNotFound(err) {
		return sluice.Permanentf("scan range %d of batch %s: no such batch", m.Range, m.BatchID)
	}
	if err != nil {
		return err
	}
	log := batchLog(s.log(), b.ID)
	if b.State != sluice.StateSplitting {
		log.Info("scan range for a batch already split; ignored", "range", m.Range, "state", b.State)
		return nil
	}
	if m.Ranges < 1 || m.Ranges > sluice.MaxScanRanges || m.Range < 0 || m.Range >= m.Ranges || m.Length < 1 || m.Offset < m.Start || m.Offset+m.Length > m.Size || m.Input != ArchiveKey(b) {
		// Not a message fanOut writes: retrying it cannot help.
		return sluice.Permanentf("scan range %d of %d of batch %s: bytes %d+%d of %q do not fit the batch's input (%d bytes from %d)",
			m.Range, m.Ranges, b.ID, m.Offset, m.Length, m.Input, m.Size, m.Start)
	}
	fd, err := s.batchFeed(ctx, b)
	if errors.Is(err, errBatchFailed) {
		return nil
	}
	if err != nil {
		return err
	}
	fs := Splitter{fd}
	sum, err := fs.summarize(ctx, m, m.Offset, m.Length, csvscan.StateField)
	if err != nil {
		return err
	}
	if _, err := fs.Blobs.Put(ctx, ScanKey(b, m.Range), bytes.NewReader(sluice.Encode(sum))); err != nil {
		return err
	}
	if err := fs.fault(PointScanAfterSummary); err != nil {
		return err
	}
	c, err := fs.Ledger.ScanRangeDone(ctx, b.ID, m.Range, m.Ranges)
	if err != nil {
		return err
	}
	if err := fs.fault(PointScanAfterCount); err != nil {
		return err
	}
	if !c.Complete {
		return nil
	}
	// Every range is counted and the batch is still splitting: stitch,
	// whether this count completed the ranges or found them complete (a
	// redelivery after a crash, or a retry whose first reply was lost
	// after its update committed). The stitch is idempotent; a count that
	// did not complete them may follow a stitch that died, so it is
	// treated as a redelivery (the merge message goes again).
	return fs.stitch(ctx, b, m, redelivered || !c.Completed)
}

// summarize reads bytes [off, off+n) of the input and summarizes them from
// the start state lane.
func (s Splitter) summarize(ctx context.Context, m sluice.ScanRange, off, n int64, lane uint8) (csvscan.RangeSummary, error) {
	r, err := s.getRange(ctx, m.Input, m.ETag, off, n)
	if err != nil {
		return csvscan.RangeSummary{}, fmt.Errorf("scan range %d: %w", m.Range, err)
	}
	defer r.Close()
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return csvscan.RangeSummary{}, fmt.Errorf("scan range %d: reading bytes %d-%d of %s: %w", m.Range, off, off+n, m.Input, err)
	}
	return csvscan.SummarizeRange(data, off, lane, s.scanOptions(m))
}

// stitch composes the ranges' summaries into chunks, sends their messages
// and finishes the split. Run again after a crash, it sends the same
// messages again, which the workers and the ledger already tolerate.
func (s Splitter) stitch(ctx context.Context, b sluice.Batch, m sluice.ScanRange, redelivered bool) error {
	sums := make([]csvscan.RangeSummary, m.Ranges)
	for i := range sums {
		if err := s.readSummary(ctx, b, i, &sums[i]); err != nil {
			return err
		}
	}
	chunks, rows, err := csvscan.Stitch(sums, m.Start, m.Line, m.Size, s.scanOptions(m), func(i int, lane uint8) (csvscan.RangeSummary, error) {
		return s.summarize(ctx, m, sums[i].Off, sums[i].End-sums[i].Off, lane)
	})
	if errors.Is(err, csvscan.ErrScanner) {
		return s.scannerReason(ctx, b, m)
	}
	if err != nil {
		return err
	}
	batchLog(s.log(), b.ID).Info("scan ranges stitched", "ranges", m.Ranges, "chunks", len(chunks), "rows", rows)
	for k, c := range chunks {
		msg := sluice.ChunkReady{Version: sluice.MessageVersion, BatchID: b.ID, Chunk: k,
			Input: m.Input, InputETag: m.ETag, Offset: c.Offset, Length: c.End - c.Offset, FirstLine: c.FirstLine, Rows: c.Rows}
		if err := s.sendRange(ctx, msg); err != nil {
			return err
		}
	}
	res := splitResult{chunks: len(chunks), rows: rows}
	if err := s.finish(ctx, b, res, redelivered, inputRemoved); err != nil {
		return err
	}
	s.rec().Rows("split", "in", rows)
	s.rec().Bytes("split", "read", m.Size)
	return nil
}

func (s Splitter) readSummary(ctx context.Context, b sluice.Batch, i int, sum *csvscan.RangeSummary) error {
	r, err := s.Blobs.Get(ctx, ScanKey(b, i))
	if err != nil {
		return fmt.Errorf("scan range %d's summary: %w", i, err)
	}
	defer r.Close()
	if err := json.NewDecoder(r).Decode(sum); err != nil {
		return fmt.Errorf("scan range %d's summary: %w", i, err)
	}
	return nil
}

// scanOptions are the cut options the fan-out recorded in m, so that every
// range and the stitch use the settings the header was read with; a field
// an older message lacks comes from the running configuration.
func (s Splitter) scanOptions(m sluice.ScanRange) csvscan.CutOptions {
	o := s.cutOptions()
	if m.Delim != "" {
		o.Delim = m.Delim[0]
	}
	if m.ChunkRows > 0 {
		o.ChunkRows = m.ChunkRows
	}
	if m.MaxLineBytes > 0 {
		o.MaxRecord = m.MaxLineBytes
	}
	return o
}

// scannerReason fails the batch with the Scanner's own reason for the file.
func (s Splitter) scannerReason(ctx context.Context, b sluice.Batch, m sluice.ScanRange) error {
	r, err := s.getRange(ctx, m.Input, m.ETag, 0, m.Size)
	if err != nil {
		return err
	}
	defer r.Close()
	o := s.scanOptions(m)
	sc := csvscan.NewScanner(bufio.NewReaderSize(r, 64<<10), o.Delim, o.MaxRecord)
	for {
		_, err := sc.Next()
		if err == io.EOF {
			return errors.New("the scan ranges say the file is bad, the Scanner says it is not (a bug)")
		}
		if errors.Is(err, csvscan.ErrTooLong) || errors.Is(err, csvscan.ErrOpenQuote) {
			return s.fail(ctx, b, recordError(err, o.MaxRecord).Error())
		}
		if err != nil {
			return err
		}
	}
}
