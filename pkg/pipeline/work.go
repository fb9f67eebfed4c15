package pipeline

import (
	"bytes"
	"cmp"
	"context"
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

	mu    sync.Mutex
	plans map[string]*plan // by reference version and header row
}

// NewWorker returns a worker; it caches compiled plans per header.
func NewWorker(d *Deps) *Worker { return &Worker{Deps: d, plans: map[string]*plan{}} }

// plan is the configuration bound to one header: which rule checks which
// field, where the key is, which reference values are appended.
type plan struct {
	nfields int
	checks  []fieldCheck
	key     int   // field index of the lookup key; -1: no enrichment
	pick    []int // indexes into the catalog's values, in append order
}

type fieldCheck struct {
	field int
	col   *rules.Column
}

func (w *Worker) planFor(ctx context.Context, ref pinned, header []byte, fields [][]byte) (*plan, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p, ok := w.plans[ref.id+"\x00"+string(header)]; ok {
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
				return nil, sluice.Permanentf("the reference data has no column %q (it has %s)", a, strings.Join(refs, ", "))
			}
			p.pick = append(p.pick, i)
		}
	}
	w.plans[ref.id+"\x00"+string(header)] = p
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
	start, end   int // the raw record in the arena
	kstart, kend int // the key in keyArena
}

// Process validates and enriches one chunk.
func (w *Worker) Process(ctx context.Context, c sluice.ChunkReady, redelivered bool) error {
	b, err := w.Ledger.GetBatch(ctx, c.BatchID)
	if isNotFound(err) {
		return sluice.PermanentReason(sluice.ReasonUnknownBatch, fmt.Errorf("chunk message for batch %q, which does not exist", c.BatchID))
	}
	if err != nil {
		return err
	}
	if b.State.Terminal() {
		batchLog(w.log(), b.ID).Info("chunk for a finished batch; ignored", "chunk", c.Chunk, "state", b.State)
		return nil
	}
	ref, err := w.reference(ctx, b)
	if errors.Is(err, errBatchFailed) {
		return nil
	}
	if err != nil {
		return err
	}
	r, err := w.Blobs.Get(ctx, c.Key)
	if isNotFound(err) {
		return sluice.PermanentReason(sluice.ReasonMissingObject, fmt.Errorf("chunk %s is missing", c.Key))
	}
	if err != nil {
		return err
	}
	defer r.Close()

	delim := w.Config.Delim()
	bufs := bufPool.Get().(*chunkBufs)
	defer bufPool.Put(bufs)
	sc := csvscan.NewScannerBuffer(r, delim, w.Config.Limits.MaxLineBytes+len(b.Header)*4+1024, bufs.scan)
	defer func() { bufs.scan = sc.Buffer() }()
	rawHeader, err := sc.Next()
	if err != nil {
		return fmt.Errorf("chunk %s: reading header: %w", c.Key, err)
	}
	hdr := bytes.Clone(csvscan.TrimEOL(rawHeader))
	hfields, _, err := csvscan.Split(hdr, delim, nil, nil)
	if err != nil {
		return sluice.Permanentf("chunk %s: header: %v", c.Key, err)
	}
	p, err := w.planFor(ctx, ref, hdr, hfields)
	if err != nil {
		return err
	}

	stats := sluice.ChunkStats{Chunk: c.Chunk, Reasons: map[string]int{}}
	var rejects []sluice.RowError
	reject := func(line int64, raw []byte, column, rule, msg string) {
		stats.RowsRejected++
		stats.Reasons[rule]++
		rejects = append(rejects, sluice.RowError{Chunk: c.Chunk, Line: line, Column: column, Rule: rule, Message: msg, Raw: string(raw)})
	}
	arena := bufs.arena[:0]
	defer func() { bufs.arena = arena[:0] }()
	var keyArena []byte
	rows := bufs.rows[:0]
	defer func() { bufs.rows = rows[:0] }()
	var fields [][]byte
	var scratch []byte
	firstLine := int64(-1)
	for {
		rec, err := sc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("chunk %s: %w", c.Key, err)
		}
		if firstLine < 0 {
			firstLine = sc.Line()
		}
		line := c.FirstLine + sc.Line() - firstLine
		raw := csvscan.TrimEOL(rec)
		stats.RowsIn++
		if !utf8.Valid(raw) {
			reject(line, raw, "", rules.RuleEncoding, "the row is not valid UTF-8 text")
			continue
		}
		if bytes.IndexByte(raw, 0) >= 0 {
			// Valid UTF-8, but no text holds NUL, and many tools cut a value there.
			reject(line, raw, "", rules.RuleEncoding, "the row holds a NUL byte (0x00)")
			continue
		}
		fields, scratch, err = csvscan.Split(raw, delim, fields, scratch)
		if err != nil {
			reject(line, raw, "", rules.RuleCSV, "the row is not well-formed CSV: "+err.Error())
			continue
		}
		if len(fields) != p.nfields {
			reject(line, raw, "", rules.RuleFieldCount, fmt.Sprintf("the row has %d fields, the header has %d", len(fields), p.nfields))
			continue
		}
		ok := true
		for _, fc := range p.checks {
			if rule, msg, good := fc.col.Check(fields[fc.field]); !good {
				reject(line, raw, fc.col.Name, rule, msg)
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		start := len(arena)
		arena = append(arena, raw...)
		pr := pending{line: line, start: start, end: len(arena)}
		if p.key >= 0 {
			pr.kstart = len(keyArena)
			keyArena = append(keyArena, fields[p.key]...)
			pr.kend = len(keyArena)
		}
		rows = append(rows, pr)
	}

	// One batched lookup for the whole chunk.
	var vals [][]string
	allKeys := string(keyArena) // one allocation for every key of the chunk
	key := func(r pending) string { return allKeys[r.kstart:r.kend] }
	if p.key >= 0 && len(rows) > 0 {
		keys := make([]string, len(rows))
		for i, r := range rows {
			keys[i] = key(r)
		}
		if vals, err = ref.Lookup(ctx, keys); err != nil {
			return fmt.Errorf("chunk %s: reference lookup: %w", c.Key, err)
		}
	}

	bufs.out.Reset()
	bufs.out.Grow(len(arena) + len(rows)*64)
	out := &bufs.out
	var line []byte
	for i, r := range rows {
		raw := arena[r.start:r.end]
		var ref []string
		if p.key >= 0 {
			ref = vals[i]
			if ref == nil && w.Config.Reference.OnMissing == "reject" {
				reject(r.line, raw, w.Config.Reference.Key, rules.RuleReference,
					fmt.Sprintf("%s %q is not in the reference data", w.Config.Reference.Key, key(r)))
				continue
			}
		}
		line = line[:0]
		guard := w.Config.FormulaGuard.Output
		if !guard && bytes.IndexByte(raw, '"') < 0 && bytes.IndexByte(raw, '\r') < 0 {
			line = append(line, raw...) // already in the output's form
		} else {
			fields, scratch, _ = csvscan.Split(raw, delim, fields, scratch)
			if guard {
				for k, f := range fields {
					if formulaLike(f) {
						fields[k] = append([]byte{'\''}, f...)
					}
				}
			}
			line = csvscan.AppendRecord(line, fields, delim)
			line = line[:len(line)-1]
		}
		if p.key >= 0 {
			for _, j := range p.pick {
				line = append(line, delim)
				if ref != nil {
					v := []byte(ref[j])
					if guard && formulaLike(v) {
						v = append([]byte{'\''}, v...)
					}
					line = csvscan.AppendField(line, v, delim)
				}
			}
		}
		line = append(line, '\n')
		out.Write(line)
		stats.RowsOut++
	}

	// Rejected rows in line order: the worker found them in two passes.
	sortRejects(rejects)
	bufs.errs.Reset()
	errOut := &bufs.errs
	var rec []byte
	g := func(s string) string { return s }
	if w.Config.FormulaGuard.ErrorReport {
		g = guardFormula
	}
	for _, e := range rejects {
		rec = csvscan.AppendStrings(rec[:0], []string{strconv.FormatInt(e.Line, 10), g(e.Column), e.Rule, g(e.Message), g(e.Raw)}, ',')
		errOut.Write(rec)
	}
	outBytes := int64(out.Len() + errOut.Len())
	if _, err := w.Blobs.Put(ctx, OutputPartKey(b, c.Chunk), out); err != nil {
		return err
	}
	if _, err := w.Blobs.Put(ctx, ErrorPartKey(b, c.Chunk), errOut); err != nil {
		return err
	}
	if err := w.fault(PointWorkAfterParts); err != nil {
		return err
	}
	if err := w.Ledger.AddRejects(ctx, b.ID, rejects); err != nil {
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
		if err := w.Merges.Send(ctx, sluice.Encode(sluice.BatchReady{Version: sluice.MessageVersion, BatchID: b.ID})); err != nil {
			return err
		}
	}
	return nil
}

// chunkBufs are a chunk's working buffers, reused from chunk to chunk so a
// worker does not allocate (and the runtime zero) megabytes per chunk.
type chunkBufs struct {
	scan, arena []byte
	rows        []pending
	out, errs   bytes.Buffer
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
