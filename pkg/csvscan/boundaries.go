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
// from four states to four states. Each range, in parallel, computes that
// function (jumping from quote to quote) and its newline count, and walks its
// record ends assuming it starts outside a quoted field. A sequential pass
// over those small summaries (a prefix "sum" of function compositions and of
// newline counts) then gives every range its exact start state and first
// line number; the rare range that starts inside a quoted field is walked
// again from there. The same pass numbers the records and notes the cut
// points. Plain quote parity is not enough here: the Scanner opens a quote
// only at the start of a field (a"b is a bare quote, not an open one), which
// the state machine models exactly.
//
// Ranges go in windows of a few per worker, each read once, so memory stays
// bounded whatever the file's size.

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
// bits 2s..2s+1.
func apply(f uint8, s uint8) uint8 { return (f >> (2 * s)) & 3 }

// CutOptions tell FindCuts how the file is written and how to cut it.
type CutOptions struct {
	Delim     byte // the field delimiter
	Quote     byte // the quote character; 0 means '"' (the Scanner's)
	MaxRecord int  // as NewScanner's maxRecord
	ChunkRows int  // records per chunk (the header is not counted)
	// Workers run the parallel passes (0: GOMAXPROCS); RangeBytes is the
	// size of one range (0: 256 KiB). Two windows of 4 ranges per worker are
	// in memory at a time.
	Workers    int
	RangeBytes int
	// OnCut, when set, is called in order with each cut as soon as it is
	// final (i == 0: the header), while the passes go on, so that a split
	// can send chunks before the whole file is read. An error it returns
	// stops FindCuts, which returns it.
	OnCut func(i int, c Cut) error
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

// errScanner says the Scanner would fail: scannerError finds its error.
var errScanner = errors.New("the Scanner fails on this input")

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
	// Two windows: the workers summarize one while this goroutine numbers
	// the records of the one before.
	var wins [2][]span
	for w := range wins {
		// One buffer per window, its ranges side by side, so that the
		// window is read with one sequential read (below).
		wins[w] = make([]span, 4*p.o.Workers)
		buf := make([]byte, len(wins[w])*p.o.RangeBytes)
		for i := range wins[w] {
			wins[w][i].data = buf[i*p.o.RangeBytes : (i+1)*p.o.RangeBytes]
		}
	}
	off := p.start
	fill := func(win []span) []span {
		n := 0
		for ; n < len(win) && off < size; n++ {
			win[n].off, win[n].end = off, min(off+int64(p.o.RangeBytes), size)
			off = win[n].end
		}
		return win[:n]
	}
	cur := fill(wins[0])
	if err := p.summarize(cur); err != nil {
		return Cuts{}, err
	}
	for w := 1; len(cur) > 0; w ^= 1 {
		next := fill(wins[w])
		done := make(chan error, 1)
		go func() { done <- p.summarize(next) }()
		var err error
		for i := range cur {
			if err = p.number(&cur[i]); err != nil {
				break
			}
		}
		if err == nil {
			err = p.emit(false)
		}
		if serr := <-done; err == nil && serr != nil {
			return Cuts{}, serr
		}
		if err != nil {
			return Cuts{}, p.scannerError(err)
		}
		cur = next
	}
	if err := p.tail(); err != nil {
		return Cuts{}, p.scannerError(err)
	}
	if err := p.emit(true); err != nil {
		return Cuts{}, err
	}
	if len(p.cuts) == 0 {
		return Cuts{}, io.EOF
	}
	c := Cuts{Header: p.cuts[0], Rows: p.idx - 1}
	if len(p.cuts) > 1 {
		c.Chunks = p.cuts[1:]
	}
	return c, nil
}

// span is one range in the window.
type span struct {
	off, end int64
	data     []byte // the buffer; data[:end-off] holds the range
	fn       uint8  // the range's transition function
	nl       int64  // its newlines
	ends     []int32
	err      error
}

// pass carries the sequential state from range to range.
type pass struct {
	r     io.ReaderAt
	size  int64
	start int64 // past a leading BOM
	o     CutOptions
	cls   [256]uint8

	st        uint8 // the state at the next range's start
	line      int64 // the line of the next range's first byte
	carry     int64 // where the open record starts
	carryLine int64 // and its line
	prevLast  byte  // the last byte of the previous range
	idx       int   // non-blank records numbered so far
	blanks    int   // blank lines since the last record
	cuts      []Cut
	emitted   int // cuts handed to OnCut
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
		o.RangeBytes = 256 << 10 // stays in a core's cache through its passes
	}
	o.RangeBytes = min(o.RangeBytes, 1<<30) // record ends are kept as int32 offsets
	p := &pass{r: r, size: size, o: o, st: stField, line: 1, carryLine: 1}
	p.cls[o.Quote], p.cls[o.Delim], p.cls['\n'] = clQuote, clDelim, clNewline
	head := make([]byte, 3)
	if n, _ := r.ReadAt(head, 0); n == 3 && bytes.Equal(head, bom) && size >= 3 {
		p.start = 3 // the Scanner drops a leading BOM
	}
	p.carry = p.start
	return p, nil
}

// summarize reads the window's ranges and summarizes each, in parallel.
// The window is read at once, in order: ranges read by several goroutines
// at interleaved offsets defeat the kernel's read-ahead, and a file larger
// than the page cache (10 GB here) was then read more slowly in parallel
// than by the sequential scanner.
func (p *pass) summarize(win []span) error {
	if len(win) == 0 {
		return nil
	}
	first, last := &win[0], &win[len(win)-1]
	all := first.data[:last.end-first.off]
	if n, err := p.r.ReadAt(all, first.off); n < len(all) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("csvscan: reading bytes %d-%d: %w", first.off, last.end, err)
	}
	next := make(chan *span)
	var wg sync.WaitGroup
	for range min(p.o.Workers, len(win)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				s.err = p.summary(s)
			}
		}()
	}
	for i := range win {
		next <- &win[i]
	}
	close(next)
	wg.Wait()
	for i := range win {
		if win[i].err != nil {
			return win[i].err
		}
	}
	return nil
}

// summary takes one range, finds its transition function and newlines, and
// walks its record ends as if it started outside quotes.
func (p *pass) summary(s *span) error {
	data := s.data[:s.end-s.off] // read by summarize
	// From a close quote a range reads as from a field's start (their
	// transitions are the same), and so it does from mid-field unless the
	// range begins with a quote: two lanes to run, not four.
	field, mid := p.endState(data, stField), uint8(0)
	if mid = field; data[0] == p.o.Quote {
		mid = p.endState(data, stMid)
	}
	s.fn = field<<(2*stField) | mid<<(2*stMid) | p.endState(data, stQuoted)<<(2*stQuoted) | field<<(2*stClose)
	s.nl = int64(bytes.Count(data, []byte{'\n'}))
	s.ends = s.ends[:0]
	p.walk(data, stField, func(i int) { s.ends = append(s.ends, int32(i)) })
	return nil
}

// endState is the state after data from state st. Outside quotes only a
// quote at a field's start changes the kind of state, so it jumps from quote
// to quote.
func (p *pass) endState(data []byte, st uint8) uint8 {
	q := p.o.Quote
	for i := 0; i < len(data); {
		switch st {
		case stQuoted:
			k := bytes.IndexByte(data[i:], q)
			if k < 0 {
				return stQuoted
			}
			i, st = i+k+1, stClose
		case stClose:
			st, i = step[stClose][p.cls[data[i]]], i+1
		default:
			k := bytes.IndexByte(data[i:], q)
			if k < 0 {
				return step[stMid][p.cls[data[len(data)-1]]] // no quote: the last byte decides
			}
			j := i + k
			if j == i && st == stField || j > i && (data[j-1] == p.o.Delim || data[j-1] == '\n') {
				st = stQuoted
			} else {
				st = stMid
			}
			i = j + 1
		}
	}
	return st
}

// walk calls end with the offset (in data) of each record-ending newline,
// from state st, and returns the state at the end. Outside quotes it jumps
// from newline to newline when no quote lies between, as the Scanner does.
func (p *pass) walk(data []byte, st uint8, end func(i int)) uint8 {
	q := p.o.Quote
	fast := true // tried once a record: a quote sends the rest of it byte by byte
	nextQ := -1  // the first quote at or after i once i <= nextQ (len(data): none)
	for i := 0; i < len(data); {
		if fast && st != stQuoted && st != stClose {
			nl := bytes.IndexByte(data[i:], '\n')
			if nl >= 0 && nextQ < i {
				if nextQ = bytes.IndexByte(data[i:], q); nextQ < 0 {
					nextQ = len(data)
				} else {
					nextQ += i
				}
			}
			if nl >= 0 && nextQ > i+nl {
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

// number takes the next range in order: it fixes the range's start state
// (walking it again in the rare case that the guess was wrong), then numbers
// its records and notes the cuts they start or end.
func (p *pass) number(s *span) error {
	data := s.data[:s.end-s.off]
	// From a close quote or from mid-field a range reads as from a field's
	// start, unless (mid-field) it begins with a quote.
	if p.st == stQuoted || p.st == stMid && data[0] == p.o.Quote {
		s.ends = s.ends[:0]
		p.walk(data, p.st, func(i int) { s.ends = append(s.ends, int32(i)) })
	}
	counted, line := 0, p.line // line is p.line plus the newlines in data[:counted]
	lineAt := func(pos int64) int64 {
		if pos < s.off {
			return p.carryLine
		}
		to := int(pos - s.off)
		line += int64(bytes.Count(data[counted:to], []byte{'\n'}))
		counted = to
		return line
	}
	for _, e := range s.ends {
		end := s.off + int64(e) + 1
		n := end - p.carry
		if n > int64(p.o.MaxRecord) {
			return errScanner
		}
		var first byte // the record's first byte, for a blank CRLF
		if p.carry >= s.off {
			first = data[p.carry-s.off]
		} else {
			first = p.prevLast
		}
		if !(n == 1 || n == 2 && first == '\r') {
			p.record(p.carry, end, lineAt)
		} else {
			p.blanks++
		}
		p.carry = end
	}
	p.carryLine = lineAt(p.carry)
	p.st, p.line, p.prevLast = apply(s.fn, p.st), p.line+s.nl, data[len(data)-1]
	return nil
}

// emit hands OnCut the cuts that are final: all but the last, which may
// still grow, or all of them at the end.
func (p *pass) emit(all bool) error {
	if p.o.OnCut == nil {
		return nil
	}
	n := len(p.cuts)
	if !all {
		n--
	}
	for ; p.emitted < n; p.emitted++ {
		if err := p.o.OnCut(p.emitted, p.cuts[p.emitted]); err != nil {
			return err
		}
	}
	return nil
}

// record numbers the record [start, end) and adds it to the header or to
// the current chunk.
func (p *pass) record(start, end int64, lineAt func(int64) int64) {
	if p.idx == 0 || (p.idx-1)%p.o.ChunkRows == 0 {
		p.cuts = append(p.cuts, Cut{Offset: start, FirstLine: lineAt(start)})
	}
	c := &p.cuts[len(p.cuts)-1]
	if c.Rows > 0 {
		c.Blanks += p.blanks // they lie between this cut's records
	}
	c.End = end
	c.Rows++
	p.blanks = 0
	p.idx++
}

// tail takes the last record, which may lack its line break.
func (p *pass) tail() error {
	if p.st == stQuoted {
		return errScanner // a quote never closed
	}
	n := p.size - p.carry
	if n <= 0 {
		return nil
	}
	if n > int64(p.o.MaxRecord) {
		return errScanner
	}
	b := make([]byte, 1)
	if _, err := p.r.ReadAt(b, p.carry); err != nil && err != io.EOF {
		return err
	}
	if !(n == 1 && b[0] == '\r') {
		p.record(p.carry, p.size, func(int64) int64 { return p.carryLine })
	}
	return nil
}

// scannerError runs the Scanner itself to report exactly its error: the
// passes only know that there is one, which is rare and final.
func (p *pass) scannerError(err error) error {
	if err != errScanner {
		return err
	}
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
