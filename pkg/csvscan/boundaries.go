package csvscan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// Parallel record-boundary finding.
//
// Whether a newline ends a record depends on everything before it (is it
// inside a quoted field?), which is why a CSV file is usually cut by one
// sequential stream. The Scanner's rules are a four-state machine over four
// byte classes, so the effect of any byte range on the state is a function
// from four states to four states. Each range computes that function for all
// four start states at once (one table look-up a byte), and its newline count;
// a sequential pass over those small summaries (a prefix "sum" of function
// compositions and of counts) then gives every range its exact start state
// and first line number. A second parallel pass, now knowing each range's
// state, walks the records; a second summary pass numbers them; a third
// parallel pass writes the cut points. Plain quote parity is not enough here:
// the Scanner opens a quote only at the start of a field (a"b is a bare quote,
// not an open one), which the state machine models exactly.

// The Scanner's states between two bytes.
const (
	stField  = iota // at the start of a field (a quote opens a quoted field)
	stMid           // inside an unquoted field (a quote is data)
	stQuoted        // inside a quoted field (newlines and delimiters are data)
	stClose         // just after a quote in a quoted field: "" is data, else it closed
)

// Byte classes.
const (
	clOther = iota
	clQuote
	clDelim
	clNewline
)

// step is the Scanner's transition: step[state][class].
var step = [4][4]uint8{
	stField:  {clOther: stMid, clQuote: stQuoted, clDelim: stField, clNewline: stField},
	stMid:    {clOther: stMid, clQuote: stMid, clDelim: stField, clNewline: stField},
	stQuoted: {clOther: stQuoted, clQuote: stClose, clDelim: stQuoted, clNewline: stQuoted},
	stClose:  {clOther: stMid, clQuote: stQuoted, clDelim: stField, clNewline: stField},
}

// A transition function packs, for each start state s, the state reached in
// bits 2s..2s+1; identity maps every state to itself.
const identity = stField | stMid<<2 | stQuoted<<4 | stClose<<6

// fnStep[f][class] is f followed by one byte of that class: all four lanes of
// the state machine advance with one look-up.
var fnStep = func() (t [256][4]uint8) {
	for f := range 256 {
		for c := range 4 {
			var g uint8
			for s := range 4 {
				g |= step[(f>>(2*s))&3][c] << (2 * s)
			}
			t[f][c] = g
		}
	}
	return t
}()

func apply(f uint8, s uint8) uint8 { return (f >> (2 * s)) & 3 }

// CutOptions tell FindCuts how the file is written and how to cut it.
type CutOptions struct {
	Delim     byte // the field delimiter
	Quote     byte // the quote character; 0 means '"' (the Scanner's)
	MaxRecord int  // as NewScanner's maxRecord
	ChunkRows int  // records per chunk (the header is not counted)
	// Workers run the parallel passes (0: GOMAXPROCS); RangeBytes is the
	// size of one range (0: 4 MiB), which bounds each worker's memory.
	Workers    int
	RangeBytes int
}

// Cut is a run of whole records: input[Offset:End] holds Rows records (and
// any blank lines between them, Blanks of them, which the Scanner skips), the
// first starting on line FirstLine. Offset is a record's start, so a fresh
// scan from Offset reads exactly these records.
type Cut struct {
	Offset, End int64
	FirstLine   int64
	Rows        int
	Blanks      int
}

// Cuts is a file's header record and its chunks of ChunkRows records each
// (the last may hold fewer).
type Cuts struct {
	Header Cut
	Chunks []Cut
	Rows   int // records after the header
}

// FindCuts finds, with parallel passes over r, the records the Scanner would
// return from the size bytes of r, and cuts them as the splitter does: the
// first record is the header, then chunks of ChunkRows records. It returns
// exactly the Scanner's error when the Scanner would fail (a record over
// MaxRecord, a quote never closed), and io.EOF when the file holds no record.
func FindCuts(r io.ReaderAt, size int64, o CutOptions) (Cuts, error) {
	p, err := newPass(r, size, o)
	if err != nil {
		return Cuts{}, err
	}
	p.each(p.summarize)
	p.startStates()
	if p.err == nil {
		p.each(p.count)
	}
	if p.err != nil {
		return Cuts{}, p.err
	}
	n, bad := p.number()
	if p.err != nil {
		return Cuts{}, p.err
	}
	if bad {
		return Cuts{}, p.scannerError()
	}
	if n == 0 {
		return Cuts{}, io.EOF
	}
	p.cuts = make([]Cut, 1+(n-1+o.ChunkRows-1)/o.ChunkRows)
	p.n = n
	p.each(p.cut)
	if p.tail.idx >= 0 {
		p.record(p.tail.idx, p.tail.start, p.tail.line, size, false)
	}
	if p.err != nil {
		return Cuts{}, p.err
	}
	c := Cuts{Header: p.cuts[0], Rows: n - 1}
	if n > 1 {
		c.Chunks = p.cuts[1:]
	}
	return c, nil
}

// span is one range's summary.
type span struct {
	off, end int64
	// pass 1: the range's transition function, newline count, last byte.
	fn   uint8
	nl   int64
	last byte
	// start state and the line of the range's first byte (from the summaries).
	state uint8
	line  int64
	// pass 2: the first and last record-ending newlines (-1: none), whether
	// the byte before the first is a CR inside the range, the newlines up to
	// and including the last, the non-blank records after the first, a record
	// there over the limit.
	firstEnd, lastEnd int64
	firstAfterCR      bool
	lastEndNL         int64
	recs              int
	tooLong           bool
	// numbering: the first record's start, line and index (-1: blank), and
	// the index of the next non-blank record.
	carry, carryLine int64
	firstIdx, idx0   int
}

type pass struct {
	r     io.ReaderAt
	size  int64
	o     CutOptions
	cls   [256]uint8
	spans []span
	bufs  sync.Pool
	n     int // records, header included
	cuts  []Cut
	tail  struct {
		idx         int
		start, line int64
	}
	mu  sync.Mutex
	err error
}

func newPass(r io.ReaderAt, size int64, o CutOptions) (*pass, error) {
	if o.Quote == 0 {
		o.Quote = '"'
	}
	if o.Delim == o.Quote || o.Delim == '\n' || o.Quote == '\n' || o.MaxRecord <= 0 || o.ChunkRows <= 0 {
		return nil, fmt.Errorf("csvscan: FindCuts: bad options %+v", o)
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.RangeBytes <= 0 {
		o.RangeBytes = 4 << 20
	}
	p := &pass{r: r, size: size, o: o}
	p.cls[o.Quote], p.cls[o.Delim], p.cls['\n'] = clQuote, clDelim, clNewline
	p.bufs.New = func() any { b := make([]byte, o.RangeBytes); return &b }
	var start int64
	head := make([]byte, 3)
	if n, _ := r.ReadAt(head, 0); n == 3 && bytes.Equal(head, bom) && size >= 3 {
		start = 3 // the Scanner drops a leading BOM
	}
	for off := start; off < size; off += int64(o.RangeBytes) {
		p.spans = append(p.spans, span{off: off, end: min(off+int64(o.RangeBytes), size)})
	}
	return p, nil
}

// each runs f on every range, Workers at a time, each with the range's bytes.
func (p *pass) each(f func(s *span, data []byte)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(p.o.Workers, len(p.spans)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bp := p.bufs.Get().(*[]byte)
			defer p.bufs.Put(bp)
			for i := range next {
				s := &p.spans[i]
				data := (*bp)[:s.end-s.off]
				if n, err := p.r.ReadAt(data, s.off); n < len(data) {
					p.fail(fmt.Errorf("csvscan: reading bytes %d-%d: %w", s.off, s.end, orUnexpectedEOF(err)))
					continue
				}
				f(s, data)
			}
		}()
	}
	for i := range p.spans {
		next <- i
	}
	close(next)
	wg.Wait()
}

func orUnexpectedEOF(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (p *pass) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// summarize is pass 1: the range's effect on each start state.
func (p *pass) summarize(s *span, data []byte) {
	f := uint8(identity)
	cls := &p.cls
	for _, c := range data {
		f = fnStep[f][cls[c]]
	}
	s.fn, s.nl, s.last = f, int64(bytes.Count(data, []byte{'\n'})), data[len(data)-1]
}

// startStates composes the summaries: each range's start state and line.
func (p *pass) startStates() {
	st, line := uint8(stField), int64(1)
	for i := range p.spans {
		s := &p.spans[i]
		s.state, s.line = st, line
		st, line = apply(s.fn, st), line+s.nl
	}
}

// walk calls end with the offset (in data) of each record-ending newline,
// from state st, and returns the state at the end. Outside quotes it jumps
// from newline to newline when no quote lies between, as the Scanner does.
func (p *pass) walk(data []byte, st uint8, end func(i int)) uint8 {
	q := p.o.Quote
	fast := true // tried once a record: a quote sends the rest of it byte by byte
	for i := 0; i < len(data); {
		if fast && st != stQuoted && st != stClose {
			nl := bytes.IndexByte(data[i:], '\n')
			if nl >= 0 && bytes.IndexByte(data[i:i+nl], q) < 0 {
				i += nl
				end(i)
				i, st = i+1, stField
				continue
			}
			fast = false
		}
		c := data[i]
		was := st
		st = step[st][p.cls[c]]
		if c == '\n' && was != stQuoted {
			end(i)
			fast = true
		}
		i++
	}
	return st
}

// count is pass 2: where the range's records end, how many are not blank,
// and whether one whose start is in the range is over the limit.
func (p *pass) count(s *span, data []byte) {
	s.firstEnd, s.lastEnd = -1, -1
	prev := -1 // the last record end seen in the range
	p.walk(data, s.state, func(i int) {
		if prev < 0 {
			s.firstEnd = s.off + int64(i)
			s.firstAfterCR = i > 0 && data[i-1] == '\r'
		} else {
			n := i - prev
			s.tooLong = s.tooLong || n > p.o.MaxRecord
			if !(n == 1 || n == 2 && data[i-1] == '\r') {
				s.recs++
			}
		}
		prev = i
	})
	if prev >= 0 {
		s.lastEnd = s.off + int64(prev)
		s.lastEndNL = int64(bytes.Count(data[:prev+1], []byte{'\n'}))
	}
}

// number stitches pass 2: it numbers the non-blank records and finds the
// first record of each range, whose start lies in an earlier range. It
// returns the records counted and whether the Scanner would fail.
func (p *pass) number() (int, bool) {
	if len(p.spans) == 0 {
		p.tail.idx = -1
		return 0, false
	}
	carry, carryLine := p.spans[0].off, int64(1)
	idx := 0
	for i := range p.spans {
		s := &p.spans[i]
		s.carry, s.carryLine, s.firstIdx, s.idx0 = carry, carryLine, -1, idx
		if s.firstEnd < 0 {
			continue
		}
		n := s.firstEnd + 1 - carry
		afterCR := s.firstAfterCR || s.firstEnd == s.off && i > 0 && p.spans[i-1].last == '\r'
		if s.tooLong || n > int64(p.o.MaxRecord) {
			return 0, true
		}
		if !(n == 1 || n == 2 && afterCR) {
			s.firstIdx = idx
			idx++
		}
		s.idx0 = idx
		idx += s.recs
		carry, carryLine = s.lastEnd+1, s.line+s.lastEndNL
	}
	// The last record may lack its line break.
	p.tail.idx = -1
	last := p.spans[len(p.spans)-1]
	if apply(last.fn, last.state) == stQuoted {
		return 0, true // the Scanner: a quote never closed
	}
	if n := p.size - carry; n > 0 {
		if n > int64(p.o.MaxRecord) {
			return 0, true
		}
		b := make([]byte, 1)
		if _, err := p.r.ReadAt(b, carry); err != nil && err != io.EOF {
			p.fail(err)
		}
		if !(n == 1 && b[0] == '\r') {
			p.tail.idx, p.tail.start, p.tail.line = idx, carry, carryLine
			idx++
		}
	}
	return idx, false
}

// scannerError runs the Scanner itself to report exactly its error: the
// parallel passes only know that there is one, which is rare and final.
func (p *pass) scannerError() error {
	sc := NewScanner(io.NewSectionReader(p.r, 0, p.size), p.o.Delim, p.o.MaxRecord)
	for {
		if _, err := sc.Next(); err != nil {
			if err == io.EOF {
				return errors.New("csvscan: FindCuts and the Scanner disagree (a bug): the Scanner found no error")
			}
			return err
		}
	}
}

// cut is pass 3: it hands the records that start or end a cut to record.
func (p *pass) cut(s *span, data []byte) {
	idx := s.idx0
	prev := -1
	counted, line := 0, s.line // line is s.line plus the newlines in data[:counted]
	p.walk(data, s.state, func(i int) {
		end := s.off + int64(i) + 1
		if prev < 0 {
			prev = i
			if s.firstIdx >= 0 {
				p.record(s.firstIdx, s.carry, s.carryLine, end, false)
			} else {
				p.record(s.idx0-1, 0, 0, end, true)
			}
			return
		}
		start, n := prev+1, i-prev
		prev = i
		if n == 1 || n == 2 && data[i-1] == '\r' {
			p.record(idx-1, 0, 0, end, true)
			return
		}
		if idx == 0 || (idx-1)%p.o.ChunkRows == 0 {
			line += int64(bytes.Count(data[counted:start], []byte{'\n'}))
			counted = start
		}
		p.record(idx, s.off+int64(start), line, end, false)
		idx++
	})
}

// record notes the record numbered idx (or a blank line after it) if it
// starts or ends a cut; line need only be right for a record that starts one.
func (p *pass) record(idx int, start, line, end int64, blank bool) {
	if idx < 0 {
		return // blank lines before the header
	}
	k, pos := 0, 0 // the cut (0: header) and the record's place in it
	if idx > 0 {
		k, pos = 1+(idx-1)/p.o.ChunkRows, (idx-1)%p.o.ChunkRows
	}
	c := &p.cuts[k]
	if blank {
		if k != 0 && pos != p.o.ChunkRows-1 && idx != p.n-1 {
			p.mu.Lock()
			c.Blanks++
			p.mu.Unlock()
		}
		return
	}
	if pos == 0 {
		c.Offset, c.FirstLine = start, line
	}
	if k == 0 || pos == p.o.ChunkRows-1 || idx == p.n-1 {
		c.End, c.Rows = end, pos+1
	}
}
