package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/sluicehq/sluice/pkg/tracing"
	"io"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/csvscan"
	"github.com/sluicehq/sluice/pkg/format"
	"github.com/sluicehq/sluice/pkg/reference"
	"github.com/sluicehq/sluice/pkg/s3event"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// Splitter cuts an input file into chunks of ChunkRows records.
type Splitter struct{ *Deps }

// Handle is the split stage's queue handler: pkg/s3event unwraps the
// message (an S3 notification, possibly of several records, an EventBridge
// event, or Sluice's own ObjectCreated) and Split runs on each object.
func (s Splitter) Handle(ctx context.Context, m sluice.Message) error {
	if sluice.IsScanRange(m.Body) {
		var sr sluice.ScanRange
		if err := sluice.Decode(m.Body, &sr); err != nil {
			return err
		}
		return s.scanRange(ctx, sr, m.ReceiveCount > 1)
	}
	return s3event.Handle(ctx, m, s.log(), s.Split)
}

// Split runs the split of one object. redelivered says whether this event
// may have been handled before, by a process that died.
func (s Splitter) Split(ctx context.Context, ev sluice.ObjectCreated, redelivered bool) error {
	if handled, err := s.notAnInput(ctx, ev); handled {
		return err
	}
	s, b, isNew, unclaimed, err := s.create(ctx, ev)
	if err != nil {
		return err
	}
	log := batchLog(s.log(), b.ID)
	if b.State != sluice.StateSplitting {
		log.InfoContext(ctx, "duplicate event for a batch already split; ignored", "state", b.State)
		return nil
	}
	if isNew {
		log.InfoContext(ctx, "batch created", "key", ev.Key, "feed", b.Feed, "size", ev.Size, "reference", b.RefVersion)
	}
	if err := s.fault(PointSplitAfterCreate); err != nil {
		return err
	}
	if unclaimed != "" {
		return s.fail(ctx, b, unclaimed)
	}

	src, info, why, err := s.locate(ctx, b, ev.ETag)
	if why != "" {
		return s.fail(ctx, b, why)
	}
	if err != nil {
		return err
	}
	ranges := !s.Config.CopyChunks
	// Read under the ETag locate found: in copies mode input/<key> is
	// read in place, and an upload replacing it since locate looked is
	// another batch's (the retry's source fails this one, or finds its
	// archive).
	r, err := s.Blobs.GetIf(ctx, src, info.ETag)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	defer r.Close()
	// Compressed files and workbooks are decoded here, once: their chunks
	// are the decoded CSV, so nothing after the split knows the difference.
	in, err := format.Open(r, s.Config, s.Config.Limits.MaxFileBytes, "")
	var badIn *format.BadInput
	if errors.As(err, &badIn) {
		return s.fail(ctx, b, badIn.Reason)
	}
	if err != nil {
		return err
	}
	defer in.Close()
	if ranges && in.Kind == format.KindCSV && s.fansOut(in.Reader, info.Size) {
		return s.fanOut(ctx, b, in.Reader)
	}

	res, why, err := s.cutAny(ctx, b, info, in, ranges)
	if why != "" {
		return s.fail(ctx, b, why)
	}
	if err != nil {
		return err
	}
	done := inputInPlace
	if ranges {
		done = inputCopied
	}
	if err := s.finish(ctx, b, res, redelivered, done); err != nil {
		return err
	}
	s.rec().Rows("split", "in", res.rows)
	s.rec().Bytes("split", "read", info.Size)
	log.InfoContext(ctx, "split done", "chunks", res.chunks, "rows", res.rows)
	return nil
}

// locate finds what the split reads: the batch's upload under input/,
// copied to its archive first in ranges mode, or its archive when a crash
// or a duplicate event came after the archive. why is set when the batch
// must fail instead: its file deleted, replaced, or over the size limit.
func (s Splitter) locate(ctx context.Context, b sluice.Batch, etag string) (src string, info sluice.BlobInfo, why string, err error) {
	src, info, err = s.source(ctx, b, etag)
	if why := missingReason(err, b.Key); why != "" {
		return "", info, why, nil
	}
	if err != nil {
		return "", info, "", err
	}
	if lim := s.Config.Limits.MaxFileBytes; info.Size > lim {
		return "", info, fmt.Sprintf("the file is %d bytes, over the limit of %d bytes (limits.maxFileBytes)", info.Size, lim), nil
	}
	if !s.Config.CopyChunks && src == b.Key {
		src, info, err = s.archiveFirst(ctx, b, etag)
		if why := missingReason(err, b.Key); why != "" {
			return "", info, why, nil
		}
	}
	return src, info, "", err
}

// notAnInput handles the events that start no batch: a key that is not
// valid, another bucket, a reference load, a key outside input/, a folder
// marker. handled is false for an input file.
func (s Splitter) notAnInput(ctx context.Context, ev sluice.ObjectCreated) (handled bool, err error) {
	if err := sluice.ValidateKey(ev.Key); err != nil {
		return true, sluice.PermanentReason(sluice.ReasonInvalidKey, err)
	}
	if ev.Bucket != "" && ev.Bucket != s.Blobs.Bucket() {
		return true, sluice.Permanentf("event for bucket %q, but this splitter reads bucket %q", ev.Bucket, s.Blobs.Bucket())
	}
	if strings.HasPrefix(ev.Key, reference.Prefix) {
		return true, s.loadReference(ctx, ev)
	}
	if !strings.HasPrefix(ev.Key, InputPrefix) {
		return true, sluice.Permanentf("object %q is not under %s", ev.Key, InputPrefix)
	}
	if strings.HasSuffix(ev.Key, "/") {
		// A "folder" (the S3 console makes a 0-byte object named so): not
		// a file anyone uploaded, so no batch and no email.
		s.log().InfoContext(ctx, "event for a folder marker; ignored", "key", ev.Key)
		return true, nil
	}
	return false, nil
}

// cutAny cuts the input into chunks: ranges of the archive's bytes for
// plain CSV in ranges mode, copies otherwise. why is set when the file is
// bad (the batch fails with it).
func (s Splitter) cutAny(ctx context.Context, b sluice.Batch, info sluice.BlobInfo, in *format.Opened, ranges bool) (res splitResult, why string, err error) {
	if ranges && in.Kind == format.KindCSV {
		// Ranges of the archive's own bytes, cut in parallel when the
		// archive is a local file big enough to gain from it.
		res, err = s.cutRanges(ctx, b, info.ETag, in.Reader)
	} else {
		// A decoded input (gzip, zstd, xlsx) has no byte ranges to point
		// at: its chunks are copies of the decoded CSV.
		res, err = s.cutInput(ctx, b, in.Reader)
	}
	var bad *badFile
	var badIn *format.BadInput
	switch {
	case errors.As(err, &bad):
		return res, bad.reason, nil
	case errors.As(err, &badIn):
		return res, badIn.Reason, nil
	}
	return res, "", err
}

// create routes the object to its feed and creates (or finds) its batch,
// pinning the feed's reference version. The splitter it returns runs with
// the feed's settings; unclaimed, when set, says why no feed takes the
// object (the batch is then failed with it). A
// batch found again keeps the feed it recorded, whatever the routing says
// now.
func (s Splitter) create(ctx context.Context, ev sluice.ObjectCreated) (fs Splitter, b sluice.Batch, isNew bool, unclaimed string, err error) {
	created := s.now()
	if t, err := time.Parse(time.RFC3339Nano, ev.EventTime); err == nil {
		created = t.UTC()
	}
	feed, rerr := s.Config.Route(strings.TrimPrefix(ev.Key, InputPrefix))
	fs = s
	if rerr != nil {
		unclaimed = rerr.Error()
	} else {
		fd, err := s.forFeed(feed)
		if err != nil {
			return s, b, false, "", err
		}
		fs = Splitter{fd}
	}
	ref, err := fs.pin(ctx) // the reference version the batch keeps to the end
	if err != nil && !isNotFound(err) {
		return s, b, false, "", err
	}
	name := ev.Name
	if name == "" {
		name = path.Base(ev.Key)
	}
	b, isNew, err = s.Ledger.CreateBatch(ctx, sluice.Batch{
		ID:     sluice.BatchID(s.Blobs.Bucket(), ev.Key, ev.ETag, ev.Sequence),
		Bucket: s.Blobs.Bucket(), Key: ev.Key, Name: name,
		Size: ev.Size, ETag: ev.ETag, Sequence: ev.Sequence, CreatedAt: created,
		Feed: feed, RefVersion: ref, ConfigDigest: ConfigDigest(fs.Config),
		TraceID: tracing.TraceID(ctx),
	})
	if err != nil || isNew || b.Feed == feed {
		return fs, b, isNew, unclaimed, err
	}
	fd, err := s.batchFeed(ctx, b)
	if errors.Is(err, errBatchFailed) {
		b.State = sluice.StateFailed // failed just now: the caller ignores it
		return s, b, false, "", nil
	}
	if err != nil {
		return s, b, false, "", err
	}
	return Splitter{fd}, b, false, "", nil
}

// source finds the batch's input: its object under input/ when that is
// still its upload (the same ETag), or its archived copy when a crash or a
// duplicate event came after the archive (ErrNotFound: neither).
func (s Splitter) source(ctx context.Context, b sluice.Batch, etag string) (string, sluice.BlobInfo, error) {
	info, err := s.Blobs.Stat(ctx, b.Key)
	if err != nil && !isNotFound(err) {
		return b.Key, info, err
	}
	if err == nil && (b.ETag == "" || info.ETag == b.ETag) {
		return b.Key, info, nil
	}
	replaced := err == nil
	// Gone, or another upload of the same name since this batch removed
	// its input: that one is another batch's, and this batch reads its
	// archive (copying the new upload over it would mix two files).
	// The archive is the batch's when it is a copy of the event's upload:
	// by its ETag, or where the copy got an ETag of its own (S3's copy of a
	// multipart upload) by the source ETag CopyIf recorded on it.
	info, err = s.Blobs.Stat(ctx, ArchiveKey(b))
	if err == nil && etag != "" && !info.IsCopyOf(etag) {
		err = sluice.ErrNotFound // an archive of another upload
	}
	if isNotFound(err) && replaced {
		err = errReplaced
	}
	return ArchiveKey(b), info, err
}

// finish archives the input, records the split's totals, tells the merger
// when the workers were all done before the total was known, and moves the
// batch on to processing.
func (s Splitter) finish(ctx context.Context, b sluice.Batch, res splitResult, redelivered bool, archived inputDone) error {
	// The archive comes first: once the total is set the merge may run
	// and fail the batch at once (a reject rate over the limit), and its
	// email must find the input where it says it is kept. A crash after it
	// re-splits from the archive, as a crash after the total does.
	switch archived {
	case inputCopied:
		// Copied before the cut: only the input's removal is left, and
		// only if input/<key> is still this batch's upload.
		if err := s.removeInput(ctx, b); err != nil {
			return err
		}
	case inputInPlace:
		if err := s.archive(ctx, b); err != nil {
			return err
		}
	case inputRemoved:
		// The scan split removed it before fanning out; input/<key> may
		// hold a new upload by now, which is another batch's.
	}
	if err := s.fault(PointSplitAfterArchive); err != nil {
		return err
	}
	c, err := s.Ledger.SetTotal(ctx, b.ID, res.chunks, res.rows)
	if err != nil {
		return err
	}
	if err := s.fault(PointSplitAfterTotal); err != nil {
		return err
	}
	if c.Completed || (c.Complete && redelivered) {
		if err := s.Merges.Send(ctx, sluice.Encode(sluice.BatchReady{Version: sluice.MessageVersion, BatchID: b.ID})); err != nil {
			return err
		}
	}
	_, err = s.Ledger.UpdateBatch(ctx, b.ID, sluice.BatchUpdate{State: sluice.StateProcessing, SplitAt: s.now()})
	return err
}

// missingReason is the failure reason when source found no input ("" for
// any other error).
func missingReason(err error, key string) string {
	switch {
	case errors.Is(err, errReplaced):
		return fmt.Sprintf("the file %s was replaced by another upload of the same name before it could be read; that upload is split as its own batch", key)
	case isNotFound(err):
		return fmt.Sprintf("the file %s was deleted before it could be read", key)
	}
	return ""
}

// archiveFirst copies the input to the archive before the cut (ranges
// mode), so every range names an object that stays: a chunk retried after
// the input is gone still finds its bytes. The cut then reads the archive
// too, so the ranges and the records counted are the same bytes even if
// the input is replaced. Its info carries the archive's own ETag, which
// the ranges name (a copy of a multipart upload gets another one on S3).
// The copy is conditional on the event's ETag: an upload that replaced or
// removed the input since source looked is not archived as this batch's;
// source then decides again (an archive made by an earlier attempt, or
// the batch's failure). A retry finds the archive an earlier attempt made
// (a copy of the batch's upload, known by its ETag) and does not copy
// again: a second copy of a large file costs as much as the first.
func (s Splitter) archiveFirst(ctx context.Context, b sluice.Batch, etag string) (string, sluice.BlobInfo, error) {
	if b.ETag != "" {
		info, err := s.Blobs.Stat(ctx, ArchiveKey(b))
		if err == nil && info.IsCopyOf(b.ETag) {
			return ArchiveKey(b), info, nil
		}
		if err != nil && !isNotFound(err) {
			return "", info, fmt.Errorf("archiving %s: %w", b.Key, err)
		}
	}
	err := s.copyInput(ctx, b)
	if notOurs(err) {
		src, info, err := s.source(ctx, b, etag)
		if err == nil && src == b.Key {
			// Replaced and put back between two looks: try again later.
			return "", info, fmt.Errorf("archiving %s: the input changed during the copy", b.Key)
		}
		return src, info, err
	}
	if err != nil {
		return "", sluice.BlobInfo{}, fmt.Errorf("archiving %s: %w", b.Key, err)
	}
	info, err := s.Blobs.Stat(ctx, ArchiveKey(b))
	return ArchiveKey(b), info, err
}

// errReplaced: input/<key> holds another upload (another ETag) and the
// batch has no archive of its own.
var errReplaced = fmt.Errorf("input replaced by another upload: %w", sluice.ErrNotFound)

// inputDone says where the split left the input when it finishes.
type inputDone int

const (
	inputInPlace inputDone = iota // still under input/: archive it
	inputCopied                   // archived before the cut: remove it
	inputRemoved                  // archived and removed (the scan split)
)

// badFile is a whole-file problem: the batch fails with this reason.
type badFile struct{ reason string }

func (b *badFile) Error() string { return b.reason }

func badf(format string, args ...any) error { return &badFile{reason: fmt.Sprintf(format, args...)} }

type splitResult struct{ chunks, rows int }

// cut streams the file and hands each record to the chunker, which sends
// each chunk as soon as it is full, so workers start while the split goes on.
func (s Splitter) cut(ch *chunker, r io.Reader) (splitResult, error) {
	cfg := s.Config
	br := bufio.NewReaderSize(r, 64<<10)
	if err := sniff(br); err != nil {
		return splitResult{}, err
	}
	sc := csvscan.NewScanner(br, cfg.Delim(), cfg.Limits.MaxLineBytes)
	headerLine, err := s.header(ch.ctx, ch.b, sc)
	if err != nil {
		return splitResult{}, err
	}
	ch.header = headerLine
	for {
		rec, err := sc.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, csvscan.ErrTooLong) || errors.Is(err, csvscan.ErrOpenQuote) {
			return ch.res, recordError(err, cfg.Limits.MaxLineBytes)
		}
		if err != nil {
			return ch.res, err
		}
		ch.add(rec, sc.Line(), sc.Offset())
		if ch.rows == cfg.ChunkRows {
			if err := ch.flush(); err != nil {
				return ch.res, err
			}
		}
	}
	return ch.res, ch.flush()
}

// chunker gathers records into chunks: byte ranges of input, or, when
// input is empty, copies written under to_process/.
type chunker struct {
	s     Splitter
	ctx   context.Context
	b     sluice.Batch
	input string // the object ranges point into; "": write copies
	// inputETag is input's ETag, which each range message carries.
	inputETag string
	header    []byte // the header row, each copy's first line

	buf        bytes.Buffer
	rows       int
	firstLine  int64
	start, end int64 // the chunk's bytes in the input
	res        splitResult
}

// add takes one record, which starts on line and ends at input offset end.
func (c *chunker) add(rec []byte, line, end int64) {
	if c.rows == 0 {
		c.firstLine = line
		c.start = end - int64(len(rec))
		if c.input == "" {
			c.buf.Reset()
			c.buf.Write(c.header)
		}
	}
	c.end = end
	if c.input == "" {
		c.buf.Write(rec)
		if rec[len(rec)-1] != '\n' {
			c.buf.WriteByte('\n')
		}
	}
	c.rows++
	c.res.rows++
}

// flush makes the gathered rows a chunk and sends its message.
func (c *chunker) flush() error {
	if c.rows == 0 {
		return nil
	}
	s, b := c.s, c.b
	msg := sluice.ChunkReady{Version: sluice.MessageVersion, BatchID: b.ID, Chunk: c.res.chunks, FirstLine: c.firstLine, Rows: c.rows}
	if c.input != "" {
		msg.Input, msg.InputETag, msg.Offset, msg.Length = c.input, c.inputETag, c.start, c.end-c.start
	} else {
		msg.Key = ChunkKey(b, c.res.chunks)
		if _, err := s.Blobs.Put(c.ctx, msg.Key, bytes.NewReader(c.buf.Bytes())); err != nil {
			return err
		}
	}
	if err := s.fault(PointSplitAfterChunkPut); err != nil {
		return err
	}
	if err := s.Chunks.Send(c.ctx, sluice.Encode(msg)); err != nil {
		return err
	}
	if err := s.fault(PointSplitAfterChunkSend); err != nil {
		return err
	}
	c.res.chunks++
	c.rows = 0
	return nil
}

// header reads, checks and records the header row, and returns it as each
// chunk's first line.
func (s Splitter) header(ctx context.Context, b sluice.Batch, sc *csvscan.Scanner) ([]byte, error) {
	rawHeader, err := sc.Next()
	if err == io.EOF && sc.Offset() > 0 {
		return nil, badf("the file holds only blank lines: it has no header row")
	}
	if err == io.EOF {
		return nil, badf("the file is empty: it has no header row")
	}
	if errors.Is(err, csvscan.ErrTooLong) || errors.Is(err, csvscan.ErrOpenQuote) {
		return nil, recordError(err, s.Config.Limits.MaxLineBytes)
	}
	if err != nil {
		return nil, err
	}
	header, err := s.checkHeader(rawHeader)
	if err != nil {
		return nil, err
	}
	if _, err := s.Ledger.UpdateBatch(ctx, b.ID, sluice.BatchUpdate{Header: header}); err != nil {
		return nil, err
	}
	return append(bytes.Clone(csvscan.TrimEOL(rawHeader)), '\n'), nil
}

// recordError is the reason a batch fails for a record the scanner cannot
// cut: a quote never closed, whatever the file's size (it swallows the
// rest of the file, so no row after it could be trusted), or a record
// over limits.maxLineBytes.
func recordError(err error, limit int) error {
	var oq *csvscan.OpenQuoteError
	if errors.As(err, &oq) {
		return badf("the quote opened on line %d is never closed: everything after it would be one value. Close it, or double a quote meant as data (\"\")", oq.QuoteLine)
	}
	var tl *csvscan.TooLongError
	if errors.As(err, &tl) && tl.QuoteLine > 0 {
		return badf("the quote opened on line %d is never closed within %d bytes, the limit set by limits.maxLineBytes: is a quote left open? (If values this long are meant, raise limits.maxLineBytes.)", tl.QuoteLine, limit)
	}
	what := "a record"
	if errors.As(err, &tl) {
		what = fmt.Sprintf("the record starting on line %d", tl.Line)
	}
	return badf("%s is longer than %d bytes, the limit set by limits.maxLineBytes: is a quote left open, or is this not a CSV file? (If records this long are meant, raise limits.maxLineBytes.)", what, limit)
}

// checkHeader decodes the header row and refuses one the configuration
// cannot work with.
func (s Splitter) checkHeader(raw []byte) ([]string, error) {
	cfg := s.Config
	line := csvscan.TrimEOL(raw)
	if !utf8.Valid(line) {
		return nil, badf("the header row is not valid UTF-8 text; save the file as UTF-8")
	}
	if bytes.IndexByte(line, 0) >= 0 {
		return nil, badf("the header row holds NUL bytes: the file is binary, or UTF-16 text; save it as UTF-8 CSV")
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return nil, badf("the first row is blank (only spaces or tabs): the file has no header row")
	}
	if t := bytes.TrimSpace(line); string(t) == "[" || string(t) == "{" || bytes.HasPrefix(t, []byte(`{"`)) || bytes.HasPrefix(t, []byte(`[{`)) {
		return nil, badf("the file looks like JSON, not CSV: its first row is %.40q", t)
	}
	fields, _, err := csvscan.Split(line, cfg.Delim(), nil, nil)
	if err != nil {
		return nil, badf("the header row is not valid CSV: %v", err)
	}
	if len(fields) > cfg.Limits.MaxColumns {
		return nil, badf("the header has %d columns, over the limit of %d (limits.maxColumns)", len(fields), cfg.Limits.MaxColumns)
	}
	header := make([]string, len(fields))
	seen := map[string]bool{}
	var dups []string
	for i, f := range fields {
		header[i] = string(f)
		if seen[header[i]] {
			dups = append(dups, fmt.Sprintf("%q", header[i]))
		}
		seen[header[i]] = true
	}
	if len(dups) > 0 {
		return nil, badf("the header names the column %s more than once", strings.Join(dups, ", "))
	}
	if err := keyedOutputHeader(cfg, header); err != nil {
		return nil, err
	}
	var missing []string
	for _, c := range cfg.Columns {
		if !seen[c.Name] {
			missing = append(missing, fmt.Sprintf("%q", c.Name))
		}
	}
	if cfg.Enriches() && !seen[cfg.Reference.Key] && !slices.Contains(missing, fmt.Sprintf("%q", cfg.Reference.Key)) {
		missing = append(missing, fmt.Sprintf("%q", cfg.Reference.Key))
	}
	if len(missing) > 0 {
		hint := ""
		if len(fields) == 1 && cfg.Delimiter != ";" && bytes.ContainsAny(line, ";\t|") {
			hint = fmt.Sprintf(" (the header is one column: is the file delimited by something other than %q?)", cfg.Delimiter)
		}
		if near := nearNames(cfg, header); hint == "" && near != "" {
			hint = " (names must match exactly, spaces and case included: " + near + ")"
		}
		return nil, badf("the header lacks the column(s) %s that the configuration requires; it has %s%s",
			strings.Join(missing, ", "), quoteList(header, 12), hint)
	}
	return header, nil
}

// keyedOutputHeader refuses a header that JSON Lines keys or Parquet
// column names cannot carry: a CSV output can have an empty column name,
// or an input column named like an appended reference column, but an
// object or a schema would lose one of the values.
func keyedOutputHeader(cfg *config.Pipeline, header []string) error {
	f := cfg.OutputFormat()
	if f == config.FormatCSV {
		return nil
	}
	for i, h := range header {
		if strings.TrimSpace(h) == "" {
			return badf("the header's column %d has no name, which output.format %s cannot carry: name every column", i+1, f)
		}
	}
	if cfg.Enriches() {
		for _, a := range cfg.Reference.Append {
			if slices.Contains(header, a) {
				return badf("the header has a column %q, the name of a column appended from the reference (reference.append): output.format %s needs distinct names", a, f)
			}
		}
	}
	return nil
}

func quoteList(xs []string, max int) string {
	var q []string
	for i, x := range xs {
		if i == max {
			q = append(q, fmt.Sprintf("and %d more", len(xs)-max))
			break
		}
		q = append(q, fmt.Sprintf("%q", x))
	}
	return strings.Join(q, ", ")
}

// nearNames lists the header names that would match a configured column but
// for spaces around them or letter case: "uuid " for "uuid".
func nearNames(cfg *config.Pipeline, header []string) string {
	want := map[string]bool{}
	for _, c := range cfg.Columns {
		want[c.Name] = true
	}
	if cfg.Enriches() {
		want[cfg.Reference.Key] = true
	}
	have := map[string]bool{}
	for _, h := range header {
		have[h] = true
	}
	var near []string
	for _, h := range header {
		if want[h] {
			continue
		}
		for w := range want {
			if !have[w] && strings.EqualFold(strings.TrimSpace(h), w) {
				near = append(near, fmt.Sprintf("the header has %q for %q", h, w))
			}
		}
	}
	return strings.Join(near, ", ")
}

// sniff refuses, by their first bytes, files that are not CSV text at all,
// so the reason names what the file is rather than what its header lacks.
func sniff(br *bufio.Reader) error {
	head, _ := br.Peek(br.Size())
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return badf("the file is gzip-compressed, not CSV text: decompress it before uploading")
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return badf("the file is a ZIP archive (an Excel .xlsx workbook?), not CSV text: export the sheet as CSV (UTF-8)")
	case bytes.HasPrefix(head, []byte{0xff, 0xfe}) || bytes.HasPrefix(head, []byte{0xfe, 0xff}):
		return badf("the file is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8")
	case bytes.IndexByte(head, '\n') < 0 && bytes.IndexByte(head[:max(len(head)-1, 0)], '\r') >= 0:
		// No LF in the first 64 KiB, but a CR that does not end the file.
		return badf("the lines end in a lone carriage return (CR, classic Mac OS line endings); save the file with LF or CRLF line endings")
	}
	return nil
}
