package pipeline

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/sluicehq/sluice/pkg/csvscan"
	"github.com/sluicehq/sluice/pkg/rules"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// Worker validates and enriches one chunk.
type Worker struct {
	*Deps
	*plans
}

// plans caches compiled plans by feed, reference version and header row;
// the views of a worker narrowed to one feed share it.
type plans struct {
	mu sync.Mutex
	m  map[string]*plan
}

// NewWorker returns a worker; it caches compiled plans per header.
func NewWorker(d *Deps) *Worker { return &Worker{Deps: d, plans: &plans{m: map[string]*plan{}}} }

// plan is the configuration bound to one header: which rule checks which
// field, where the key is, which reference values are appended.
type plan struct {
	nfields int
	checks  []fieldCheck
	key     int   // field index of the lookup key; -1: no enrichment
	pick    []int // indexes into the catalog's values, in append order
	// pickAll: pick is every value in the catalog's order, so a packed
	// record is appended whole (appendPackedAll).
	pickAll bool
}

type fieldCheck struct {
	field int
	col   *rules.Column
}

func (w *Worker) planFor(ctx context.Context, ref pinned, header []byte, fields [][]byte) (*plan, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := w.Config.Feed + "\x00" + ref.id + "\x00" + string(header)
	if p, ok := w.m[key]; ok {
		return p, nil
	}
	cols, err := rules.Compile(w.Config.Columns)
	if err != nil {
		return nil, sluice.Permanent(err)
	}
	idx := map[string]int{}
	for i, f := range fields {
		idx[string(f)] = i
	}
	p := &plan{nfields: len(fields), key: -1}
	// Check in header order, so the first failing column is the leftmost.
	for i, f := range fields {
		for _, c := range cols {
			if c.Name == string(f) {
				p.checks = append(p.checks, fieldCheck{field: i, col: c})
			}
		}
	}
	for _, c := range cols {
		if _, ok := idx[c.Name]; !ok {
			return nil, sluice.Permanentf("chunk header lacks column %q", c.Name)
		}
	}
	if w.Config.Enriches() {
		k, ok := idx[w.Config.Reference.Key]
		if !ok {
			return nil, sluice.Permanentf("chunk header lacks the key column %q", w.Config.Reference.Key)
		}
		p.key = k
		refs, err := ref.Columns(ctx)
		if err != nil {
			return nil, err
		}
		pos := map[string]int{}
		for i, c := range refs[1:] {
			pos[c] = i
		}
		for _, a := range w.Config.Reference.Append {
			i, ok := pos[a]
			if !ok {
				return nil, &refColumnError{fmt.Sprintf("the reference version %s has no column %q that reference.append names (it has %s)", ref.id, a, strings.Join(refs, ", "))}
			}
			p.pick = append(p.pick, i)
		}
		p.pickAll = len(p.pick) == len(refs)-1
		for k, j := range p.pick {
			p.pickAll = p.pickAll && j == k
		}
	}
	w.m[key] = p
	return p, nil
}

// Handle implements the process stage for one chunk message.
func (w *Worker) Handle(ctx context.Context, m sluice.Message) error {
	var c sluice.ChunkReady
	if err := sluice.Decode(m.Body, &c); err != nil {
		return err
	}
	return w.Process(ctx, c, m.ReceiveCount > 1)
}

// pending is a row that passed the column rules and waits for its lookup.
type pending struct {
	line         int64
	start, end   int  // the raw record in the arena
	kstart, kend int  // the key in keyArena
	plain        bool // csvscan.SplitPlain: written out as it came
}

// chunkRun is one chunk on its way through the worker: the rows read and
// validated, then looked up, then written.
type chunkRun struct {
	c     sluice.ChunkReady
	b     sluice.Batch
	p     *plan
	ref   pinned // the reference version the batch was created with
	delim byte
	bufs  *chunkBufs

	stats    sluice.ChunkStats
	rejects  []sluice.RowError
	arena    []byte               // the raw records of the rows that passed, back to back
	keyArena []byte               // their lookup keys, back to back
	rows     []pending            // the rows that passed, in order
	vals     [][]string           // the values found, when the reference is not packed
	packed   *sluice.PackedValues // the values found, when it is (bufs.packed)
	refVals  [][]byte             // one row's values, unpacked
	fields   [][]byte
	scratch  []byte
}

func (r *chunkRun) reject(line int64, raw []byte, column, rule, msg string) {
	r.stats.RowsRejected++
	r.stats.Reasons[rule]++
	r.rejects = append(r.rejects, sluice.RowError{Chunk: r.c.Chunk, Line: line, Column: column, Rule: rule, Message: msg, Raw: string(raw)})
}

// release hands the grown buffers back for the next chunk.
func (r *chunkRun) release() {
	r.bufs.arena = r.arena[:0]
	r.bufs.rows = r.rows[:0]
}

// Process validates and enriches one chunk: read and validate its rows,
// look them up in the reference, write the output and error parts, and
// count the chunk done.
func (w *Worker) Process(ctx context.Context, c sluice.ChunkReady, redelivered bool) error {
	b, err := sluice.GetBatchFields(ctx, w.Ledger, c.BatchID) // the counts are not needed here
	if isNotFound(err) {
		return sluice.PermanentReason(sluice.ReasonUnknownBatch, fmt.Errorf("chunk message for batch %q, which does not exist", c.BatchID))
	}
	if err != nil {
		return err
	}
	if b.State.Terminal() {
		batchLog(w.log(), b.ID).InfoContext(ctx, "chunk for a finished batch; ignored", "chunk", c.Chunk, "state", b.State)
		return nil
	}
	if done, err := w.skipCounted(ctx, b, c, redelivered); done || err != nil {
		return err // counted before: nothing rewritten (counted.go)
	}
	fd, err := w.batchFeed(ctx, b)
	if errors.Is(err, errBatchFailed) {
		return nil
	}
	if err != nil {
		return err
	}
	w = &Worker{Deps: fd, plans: w.plans} // the batch's feed from here on
	ref, err := w.reference(ctx, b)
	if errors.Is(err, errBatchFailed) {
		return nil
	}
	if err != nil {
		return err
	}
	bufs := bufPool.Get().(*chunkBufs)
	defer bufPool.Put(bufs)
	run := &chunkRun{
		c: c, b: b, ref: ref, delim: w.Config.Delim(), bufs: bufs,
		stats: sluice.ChunkStats{Chunk: c.Chunk, Reasons: map[string]int{}},
		arena: bufs.arena[:0], rows: bufs.rows[:0],
	}
	defer run.release()
	if err := w.read(ctx, run); err != nil {
		return w.failIfRefColumn(ctx, b, err)
	}
	if err := w.enrich(ctx, run); err != nil {
		return err
	}
	w.write(run)
	if err := w.commit(ctx, run, redelivered); !errors.Is(err, errBatchFailed) {
		return err
	}
	return nil // failed by the spool (a retry gave other bytes)
}

// read streams the chunk and validates each row: rejected rows are noted
// with their reason, the others wait in the arena for their lookup.
func (w *Worker) read(ctx context.Context, run *chunkRun) error {
	c := run.c
	r, err := w.open(ctx, c)
	if isNotFound(err) {
		return sluice.PermanentReason(sluice.ReasonMissingObject, fmt.Errorf("chunk %s is missing", c.Source()))
	}
	if err != nil {
		return err
	}
	defer r.Close()
	sc := csvscan.NewScannerBuffer(r, run.delim, w.Config.Limits.MaxLineBytes+len(run.b.Header)*4+1024, run.bufs.scan)
	defer func() { run.bufs.scan = sc.Buffer() }()
	if err := w.readHeader(ctx, run, sc); err != nil {
		return err
	}
	firstLine := int64(-1)
	for {
		rec, err := sc.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("chunk %s: %w", c.Source(), err)
		}
		if firstLine < 0 {
			firstLine = sc.Line()
		}
		run.validate(c.FirstLine+sc.Line()-firstLine, csvscan.TrimEOL(rec))
	}
}

// rangeLead comes before a range's bytes: the scanner drops a UTF-8 BOM at
// the start of its stream, which is right for a file but would cut three
// bytes from a record that happens to start with one. The blank line it
// makes is skipped like any other.
var rangeLead = []byte{'\n'}

// open streams the chunk: its range of the input, or its own object.
func (w *Worker) open(ctx context.Context, c sluice.ChunkReady) (io.ReadCloser, error) {
	if c.Key != "" {
		return w.Blobs.Get(ctx, c.Key)
	}
	if c.Input == "" || c.Length <= 0 {
		return nil, sluice.PermanentReason(sluice.ReasonMalformed, fmt.Errorf("chunk %d of batch %s names neither an object nor a range", c.Chunk, c.BatchID))
	}
	r, err := w.getRange(ctx, c.Input, c.InputETag, c.Offset, c.Length)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(rangeLead), r), r}, nil
}

// readHeader binds the chunk to its plan: by the header row a copy starts
// with, or, for a range, by the header the split recorded in the batch.
func (w *Worker) readHeader(ctx context.Context, run *chunkRun, sc *csvscan.Scanner) error {
	c := run.c
	if c.Key == "" {
		fields := make([][]byte, len(run.b.Header))
		for i, h := range run.b.Header {
			fields[i] = []byte(h)
		}
		var err error
		run.p, err = w.planFor(ctx, run.ref, []byte(strings.Join(run.b.Header, "\x00")), fields)
		return err
	}
	rawHeader, err := sc.Next()
	if err != nil {
		return fmt.Errorf("chunk %s: reading header: %w", c.Key, err)
	}
	hdr := bytes.Clone(csvscan.TrimEOL(rawHeader))
	hfields, _, err := csvscan.Split(hdr, run.delim, nil, nil)
	if err != nil {
		return sluice.Permanentf("chunk %s: header: %v", c.Key, err)
	}
	run.p, err = w.planFor(ctx, run.ref, hdr, hfields)
	return err
}

// validate checks one row (its encoding, its CSV, its field count, then
// each column's rule, leftmost first) and keeps it if it passes. A plain
// row (ASCII, no quote, CR, LF or NUL: most rows) is split and checked in
// one pass (csvscan.SplitPlain); the others take the general path.
func (r *chunkRun) validate(line int64, raw []byte) {
	r.stats.RowsIn++
	var plain bool
	if r.fields, plain = csvscan.SplitPlain(raw, r.delim, r.fields); !plain && !r.splitGeneral(line, raw) {
		return
	}
	if len(r.fields) != r.p.nfields {
		r.reject(line, raw, "", rules.RuleFieldCount, fmt.Sprintf("the row has %d fields, the header has %d", len(r.fields), r.p.nfields))
		return
	}
	for _, fc := range r.p.checks {
		// A plain row is ASCII: its values' lengths in characters are their
		// lengths in bytes, and the rules need not count runes.
		v := r.fields[fc.field]
		if plain && fc.col.ASCIIOK(v) {
			continue
		}
		if rule, msg, good := fc.col.CheckText(v, plain); !good {
			r.reject(line, raw, fc.col.Name, rule, msg)
			return
		}
	}
	start := len(r.arena)
	r.arena = append(r.arena, raw...)
	pr := pending{line: line, start: start, end: len(r.arena), plain: plain}
	if r.p.key >= 0 {
		pr.kstart = len(r.keyArena)
		r.keyArena = append(r.keyArena, r.fields[r.p.key]...)
		pr.kend = len(r.keyArena)
	}
	r.rows = append(r.rows, pr)
}

// splitGeneral checks and splits a row that is not plain: valid UTF-8, no
// NUL, well-formed CSV. It rejects the row and returns false otherwise.
func (r *chunkRun) splitGeneral(line int64, raw []byte) bool {
	if !utf8.Valid(raw) {
		r.reject(line, raw, "", rules.RuleEncoding, "the row is not valid UTF-8 text")
		return false
	}
	if bytes.IndexByte(raw, 0) >= 0 {
		// Valid UTF-8, but no text holds NUL, and many tools cut a value there.
		r.reject(line, raw, "", rules.RuleEncoding, "the row holds a NUL byte (0x00)")
		return false
	}
	var err error
	r.fields, r.scratch, err = csvscan.Split(raw, r.delim, r.fields, r.scratch)
	if err != nil {
		r.reject(line, raw, "", rules.RuleCSV, "the row is not well-formed CSV: "+err.Error())
		return false
	}
	return true
}

// enrich looks every kept row up in the reference, in one batched call:
// into the run's reused packed buffer when the reference can fill one, so
// the values cost no allocation per row, else as strings.
func (w *Worker) enrich(ctx context.Context, run *chunkRun) error {
	run.vals, run.packed = nil, nil
	if run.p.key < 0 || len(run.rows) == 0 {
		return nil
	}
	allKeys := string(run.keyArena) // one allocation for every key of the chunk
	keys := slices.Grow(run.bufs.keys[:0], len(run.rows))[:len(run.rows)]
	defer func() { run.bufs.keys = keys[:0] }()
	for i, r := range run.rows {
		keys[i] = allKeys[r.kstart:r.kend]
	}
	var err error
	if pr, ok := run.ref.Reference.(sluice.PackedReference); ok {
		err = pr.LookupPacked(ctx, keys, &run.bufs.packed)
		run.packed = &run.bufs.packed
	} else {
		run.vals, err = run.ref.Lookup(ctx, keys)
	}
	if err != nil {
		return fmt.Errorf("chunk %s: reference lookup: %w", run.c.Source(), err)
	}
	return nil
}

// found reports whether row i's key is in the reference.
func (r *chunkRun) found(i int) bool {
	if r.packed != nil {
		return r.packed.Spans[i].Found
	}
	return r.vals[i] != nil
}

// write renders the output part (the kept rows with their reference
// values appended) and the error part (the rejected rows, in line order)
// into the run's buffers.
func (w *Worker) write(run *chunkRun) {
	out := &run.bufs.out
	out.Reset()
	out.Grow(len(run.arena) + len(run.rows)*64)
	// The lines are appended to out's own free space and handed to it in
	// one Write at the end, not copied in one by one.
	lines := out.AvailableBuffer()
	for i, r := range run.rows {
		raw := run.arena[r.start:r.end]
		if run.p.key >= 0 && !run.found(i) && w.Config.Reference.OnMissing == "reject" {
			key := run.keyArena[r.kstart:r.kend]
			run.reject(r.line, raw, w.Config.Reference.Key, rules.RuleReference,
				fmt.Sprintf("%s %q is not in the reference data", w.Config.Reference.Key, key))
			continue
		}
		lines = w.outputLine(run, lines, raw, r.plain, i)
		run.stats.RowsOut++
	}
	out.Write(lines)

	// Rejected rows in line order: the worker found them in two passes.
	sortRejects(run.rejects)
	errOut := &run.bufs.errs
	errOut.Reset()
	g := func(s string) string { return s }
	if w.Config.FormulaGuard.ErrorReport {
		g = guardFormula
	}
	var rec []byte
	for _, e := range run.rejects {
		rec = csvscan.AppendStrings(rec[:0], []string{strconv.FormatInt(e.Line, 10), g(e.Column), e.Rule, g(e.Message), g(e.Raw)}, ',')
		errOut.Write(rec)
	}
}

// outputLine appends output row i to line: the row as it came (re-encoded
// when it needs quoting or a formula guard), then the reference values.
func (w *Worker) outputLine(run *chunkRun, line, raw []byte, plain bool, i int) []byte {
	guard := w.Config.FormulaGuard.Output
	delim := run.delim
	if !guard && (plain || bytes.IndexByte(raw, '"') < 0 && bytes.IndexByte(raw, '\r') < 0) {
		line = append(line, raw...) // already in the output's form
	} else {
		run.fields, run.scratch, _ = csvscan.Split(raw, delim, run.fields, run.scratch)
		if guard {
			for k, f := range run.fields {
				if formulaLike(f) {
					run.fields[k] = append([]byte{'\''}, f...)
				}
			}
		}
		line = csvscan.AppendRecord(line, run.fields, delim)
		line = line[:len(line)-1]
	}
	if run.p.key >= 0 {
		line = w.appendRef(run, line, i, guard)
	}
	return append(line, '\n')
}

// appendRef appends the reference values the plan picks for row i, each
// after a delimiter; empty ones for a key the reference lacks.
func (w *Worker) appendRef(run *chunkRun, line []byte, i int, guard bool) []byte {
	if run.packed == nil {
		return appendRefStrings(run, line, run.vals[i], guard)
	}
	sp := run.packed.Spans[i]
	if !guard {
		if out, ok := appendRefPlain(run, line, sp); ok {
			return out
		}
	}
	var vals [][]byte
	if sp.Found {
		vals = unpack(run.refVals[:0], run.packed.Buf[sp.Start:sp.End])
		run.refVals = vals
	}
	for _, j := range run.p.pick {
		line = append(line, run.delim)
		if j < len(vals) {
			line = appendValue(line, vals[j], guard, run.delim)
		}
	}
	return line
}

// appendRefPlain is appendRef's common case: the values appended as they
// are, then the appended bytes checked in one pass (csvscan.PlainDelims).
// It reports false, line then holding garbage past its old end, when a
// value needs quoting: appendRef appends them again, field by field.
func appendRefPlain(run *chunkRun, line []byte, sp sluice.PackedSpan) ([]byte, bool) {
	mark := len(line)
	switch {
	case !sp.Found:
		for range run.p.pick {
			line = append(line, run.delim)
		}
	case run.p.pickAll:
		var ok bool
		if line, ok = appendPackedAll(line, run.packed.Buf[sp.Start:sp.End], run.delim, len(run.p.pick)); !ok {
			return line, false
		}
	default:
		vals := unpack(run.refVals[:0], run.packed.Buf[sp.Start:sp.End])
		run.refVals = vals
		for _, j := range run.p.pick {
			line = append(line, run.delim)
			if j < len(vals) {
				line = append(line, vals[j]...)
			}
		}
	}
	n, ok := csvscan.PlainDelims(line[mark:], run.delim)
	return line, ok && n == len(run.p.pick)
}

// appendRefStrings is appendRef for a reference that returns strings.
func appendRefStrings(run *chunkRun, line []byte, ref []string, guard bool) []byte {
	for _, j := range run.p.pick {
		line = append(line, run.delim)
		if ref != nil {
			line = appendValue(line, []byte(ref[j]), guard, run.delim)
		}
	}
	return line
}

func appendValue(line, v []byte, guard bool, delim byte) []byte {
	if guard && formulaLike(v) {
		v = append([]byte{'\''}, v...)
	}
	return csvscan.AppendField(line, v, delim)
}

// appendPackedAll appends a packed record's n values, each after a
// delimiter, by copying the record whole and writing the delimiter over
// each one-byte length. It reports false (line then holds garbage past its
// old end) when a length takes more than one byte or the record does not
// hold exactly n values.
func appendPackedAll(line, rec []byte, delim byte, n int) ([]byte, bool) {
	mark := len(line)
	line = append(line, rec...)
	for p := mark; p < len(line); n-- {
		l := line[p]
		if l >= 0x80 || n == 0 {
			return line, false
		}
		line[p] = delim
		p += 1 + int(l)
		if p > len(line) {
			return line, false
		}
	}
	return line, n == 0
}

// unpack appends the values of one packed record (sluice.PackedValues: a
// uvarint length then the bytes, per column) to vals. It stops at a
// truncated value rather than read past the record.
func unpack(vals [][]byte, rec []byte) [][]byte {
	for len(rec) > 0 {
		n, k := uint64(rec[0]), 1
		if n >= 0x80 { // lengths under 128 are one byte: most values
			n, k = binary.Uvarint(rec)
		}
		if k <= 0 || uint64(len(rec)-k) < n {
			return vals
		}
		vals = append(vals, rec[k:k+int(n):k+int(n)])
		rec = rec[k+int(n):]
	}
	return vals
}

// commit stores the parts (or appends to the spool), then the rejected rows, then counts the chunk
// done, in that order: each step is idempotent, so a crash between any two
// is repaired by the redelivered message. The last chunk tells the merger.
func (w *Worker) commit(ctx context.Context, run *chunkRun, redelivered bool) error {
	b, stats := run.b, run.stats
	out, errOut := &run.bufs.out, &run.bufs.errs
	outBytes := int64(out.Len() + errOut.Len())
	if err := w.store(ctx, run); err != nil {
		return err
	}
	if err := w.fault(PointWorkAfterParts); err != nil {
		return err
	}
	if err := w.Ledger.AddRejects(ctx, b.ID, run.rejects); err != nil {
		return err
	}
	if err := w.fault(PointWorkAfterRejects); err != nil {
		return err
	}
	comp, err := w.Ledger.ChunkDone(ctx, b.ID, stats)
	if err != nil {
		return err
	}
	if comp.Counted {
		rec := w.rec()
		rec.Rows("process", "in", stats.RowsIn)
		rec.Rows("process", "out", stats.RowsOut)
		rec.Rows("process", "rejected", stats.RowsRejected)
		for rule, n := range stats.Reasons {
			rec.Rejected(rule, n)
		}
		rec.Bytes("process", "written", outBytes)
	}
	if err := w.fault(PointWorkAfterCount); err != nil {
		return err
	}
	if comp.Completed || (comp.Complete && !comp.Counted && redelivered) {
		return w.Merges.Send(ctx, sluice.Encode(sluice.BatchReady{Version: sluice.MessageVersion, BatchID: b.ID}))
	}
	return nil
}

// store puts the chunk's output and error rows in the batch's spool or,
// without one or when the spool's wait runs out, in the chunk's parts.
func (w *Worker) store(ctx context.Context, run *chunkRun) error {
	b, out, errOut := run.b, &run.bufs.out, &run.bufs.errs
	sb, spooled, err := w.spooled(ctx, b)
	if err != nil {
		return err
	}
	if spooled {
		ok, err := w.Spool.Append(ctx, sb, run.c.Chunk, out.Bytes(), errOut.Bytes())
		if se := (*SpoolError)(nil); errors.As(err, &se) {
			return w.failChunk(ctx, b, se.Reason)
		}
		if err != nil || ok {
			return err
		}
	}
	if err := w.putPart(ctx, OutputPartKey(b, run.c.Chunk), out); err != nil {
		return err
	}
	if err := w.putPart(ctx, ErrorPartKey(b, run.c.Chunk), errOut); err != nil {
		return err
	}
	if spooled {
		err := w.Spool.Parted(ctx, sb, run.c.Chunk)
		if se := (*SpoolError)(nil); errors.As(err, &se) {
			return w.failChunk(ctx, b, se.Reason)
		}
		return err
	}
	return nil
}

// scratchPutter is a blob store that can store an object without hashing
// it for its ETag (fsblob): parts are read back only by the merger, and
// nothing compares their ETags.
type scratchPutter interface {
	PutScratch(ctx context.Context, key string, r io.Reader) error
}

// putPart stores one of a chunk's parts.
func (w *Worker) putPart(ctx context.Context, key string, r io.Reader) error {
	if sp, ok := w.Blobs.(scratchPutter); ok {
		return sp.PutScratch(ctx, key, r)
	}
	_, err := w.Blobs.Put(ctx, key, r)
	return err
}

// chunkBufs are a chunk's working buffers, reused from chunk to chunk so a
// worker does not allocate (and the runtime zero) megabytes per chunk.
type chunkBufs struct {
	scan, arena []byte
	rows        []pending
	out, errs   bytes.Buffer
	keys        []string
	packed      sluice.PackedValues
}

var bufPool = sync.Pool{New: func() any { return &chunkBufs{} }}

func sortRejects(rs []sluice.RowError) {
	slices.SortStableFunc(rs, func(a, b sluice.RowError) int { return cmp.Compare(a.Line, b.Line) })
}

// guardFormula defuses a cell that a spreadsheet would run as a formula
// (=, +, -, @, tab, CR first), by prefixing a quote as OWASP advises. The
// error report holds untrusted rows and is made to be opened in one.
func guardFormula(s string) string {
	if formulaLike([]byte(s)) {
		return "'" + s
	}
	return s
}

func formulaLike(b []byte) bool {
	return len(b) > 0 && strings.IndexByte("=+-@\t\r", b[0]) >= 0
}
