package csvscan

import (
	"bytes"
	"errors"
)

// Record boundaries found by separate tasks, each reading one range.
//
// FindCuts keeps its ranges' summaries in memory and numbers their records
// as it goes. When the ranges are read by separate processes (the AWS split
// of a huge object, one task per range GET), each summary travels through
// storage, so it must be small: not every record end, but the range's
// transition function, its newline count, its first and last record ends,
// its longest record and its whole records already cut into chunks. A range
// is summarized as if it started at a field's start, which is nearly always
// so; Stitch, composing the summaries in order, asks again for the rare range
// whose true start state differs (inside a quoted field), as FindCuts walks
// such a range again.
//
// Chunks restart at each range's first whole record, so a chunk holds at most
// ChunkRows records (fewer at a range's end): the records, their order and
// their lines are the Scanner's exactly, which is all the merge depends on.
// Cut.Blanks is left 0: a chunk read as a byte range needs no count of the
// blank lines in it (the worker's Scanner skips them).

// The Scanner's states, as a range's start state (its lane).
const (
	StateField  = stField
	StateMid    = stMid
	StateQuoted = stQuoted
	StateClose  = stClose
)

// ErrScanner says the Scanner would fail on the file (a record over
// MaxRecord, a quote never closed). Stitch knows only that: the caller runs
// the Scanner for its exact error, which is rare and final.
var ErrScanner = errors.New("csvscan: the Scanner fails on this input")

// RangeSummary is what one range of a file says about its records, read
// from the start state Start. Offsets are the file's; lines in Chunks are
// relative: 0 is the line of the range's first byte.
type RangeSummary struct {
	Off       int64 `json:"off"`
	End       int64 `json:"end"`
	Start     uint8 `json:"start"` // the lane: StateField, StateMid or StateQuoted
	Fn        uint8 `json:"fn"`    // the transition function, for every start state
	NL        int64 `json:"nl"`    // newlines in the range
	FirstByte byte  `json:"b0"`
	LastByte  byte  `json:"bn"`
	// FirstEnd is the offset of the first record-ending newline (-1: none,
	// the range lies inside one record); FirstEndCR says the byte before it
	// is a CR that lies in the range.
	FirstEnd   int64 `json:"e0"`
	FirstEndCR bool  `json:"cr,omitempty"`
	LastEnd    int64 `json:"en"`
	LastLine   int64 `json:"ln"`  // newlines in [Off, LastEnd+1)
	MaxRecord  int64 `json:"max"` // the longest record between FirstEnd and LastEnd
	// Chunks are the non-blank records between FirstEnd and LastEnd, in
	// chunks of ChunkRows.
	Chunks []Cut `json:"chunks,omitempty"`
}

// Lane is the lane a range with first byte b is read in from state st: from
// a close quote a range reads as from a field's start, and so it does from
// mid-field unless it begins with a quote.
func Lane(st uint8, b byte, quote byte) uint8 {
	if quote == 0 {
		quote = '"'
	}
	switch {
	case st == stQuoted:
		return stQuoted
	case st == stMid && b == quote:
		return stMid
	}
	return stField
}

// SummarizeRange summarizes data, bytes [off, off+len(data)) of a file,
// read from start state st (one of Lane's results). Only Delim, Quote and
// ChunkRows of o are used.
func SummarizeRange(data []byte, off int64, st uint8, o CutOptions) (RangeSummary, error) {
	o.MaxRecord = max(o.MaxRecord, 1)
	p, err := newRules(o)
	if err != nil {
		return RangeSummary{}, err
	}
	if len(data) == 0 {
		return RangeSummary{}, errors.New("csvscan: SummarizeRange: an empty range")
	}
	s := RangeSummary{Off: off, End: off + int64(len(data)), Start: st, FirstEnd: -1, LastEnd: -1,
		FirstByte: data[0], LastByte: data[len(data)-1]}
	s.Fn = p.transition(data)
	s.NL = int64(bytes.Count(data, []byte{'\n'}))
	prev := -1 // the previous record end, in data
	counted, line := 0, int64(0)
	var cur *Cut
	p.walk(data, st, func(i int) {
		if prev < 0 {
			s.FirstEnd = off + int64(i)
			s.FirstEndCR = i > 0 && data[i-1] == '\r'
			prev = i
			return
		}
		start, n := prev+1, i-prev
		s.MaxRecord = max(s.MaxRecord, int64(n))
		prev = i
		if n == 1 || n == 2 && data[start] == '\r' {
			return // a blank line: the Scanner skips it
		}
		if cur == nil || cur.Rows == p.o.ChunkRows {
			line += int64(bytes.Count(data[counted:start], []byte{'\n'}))
			counted = start
			s.Chunks = append(s.Chunks, Cut{Offset: off + int64(start), FirstLine: line})
			cur = &s.Chunks[len(s.Chunks)-1]
		}
		cur.End, cur.Rows = off+int64(i)+1, cur.Rows+1
	})
	if prev >= 0 {
		s.LastEnd = off + int64(prev)
		s.LastLine = int64(bytes.Count(data[:prev+1], []byte{'\n'}))
	}
	return s, nil
}

// newRules is a pass that only classifies and walks bytes.
func newRules(o CutOptions) (*pass, error) {
	if o.Quote == 0 {
		o.Quote = '"'
	}
	if o.Delim == o.Quote || o.Delim == '\n' || o.Quote == '\n' || o.MaxRecord <= 0 || o.ChunkRows <= 0 {
		return nil, errors.New("csvscan: bad cut options")
	}
	p := &pass{o: o}
	p.cls[o.Quote], p.cls[o.Delim], p.cls['\n'] = clQuote, clDelim, clNewline
	return p, nil
}

// transition is data's transition function (as summary computes it).
func (p *pass) transition(data []byte) uint8 {
	field, mid := p.endState(data, stField), uint8(0)
	if mid = field; data[0] == p.o.Quote {
		mid = p.endState(data, stMid)
	}
	return field<<(2*stField) | mid<<(2*stMid) | p.endState(data, stQuoted)<<(2*stQuoted) | field<<(2*stClose)
}

// Stitch composes the summaries of consecutive ranges covering [start,
// size) of a file, in order, and returns the chunks of their records:
// start is a record's start, at line line, outside quotes (just after the
// header). resummarize gives range i summarized from another lane, when
// its true start state needs one. A file the Scanner would refuse gives
// ErrScanner.
func Stitch(sums []RangeSummary, start, line, size int64, o CutOptions, resummarize func(i int, lane uint8) (RangeSummary, error)) ([]Cut, int, error) {
	if o.Quote == 0 {
		o.Quote = '"'
	}
	st := uint8(stField)
	carry, carryLine := start, line
	var chunks []Cut
	rows := 0
	add := func(from, to, at int64) {
		rows++
		if n := len(chunks); n > 0 && chunks[n-1].Rows < o.ChunkRows {
			chunks[n-1].End, chunks[n-1].Rows = to, chunks[n-1].Rows+1
			return
		}
		chunks = append(chunks, Cut{Offset: from, End: to, FirstLine: at, Rows: 1})
	}
	var prevLast byte
	for i, s := range sums {
		if i == 0 && s.Off != start || i > 0 && s.Off != sums[i-1].End || s.End <= s.Off || i == len(sums)-1 && s.End != size {
			return nil, 0, errors.New("csvscan: Stitch: the ranges do not cover the file in order")
		}
		if lane := Lane(st, s.FirstByte, o.Quote); lane != s.Start {
			var err error
			if s, err = resummarize(i, lane); err != nil {
				return nil, 0, err
			}
		}
		if s.FirstEnd >= 0 {
			n := s.FirstEnd + 1 - carry
			cr := s.FirstEndCR || s.FirstEnd == s.Off && prevLast == '\r'
			if n > int64(o.MaxRecord) || s.MaxRecord > int64(o.MaxRecord) {
				return nil, 0, ErrScanner
			}
			if !(n == 1 || n == 2 && cr) {
				add(carry, s.FirstEnd+1, carryLine)
			}
			for _, c := range s.Chunks {
				c.FirstLine += line
				chunks = append(chunks, c)
				rows += c.Rows
			}
			carry, carryLine = s.LastEnd+1, line+s.LastLine
		}
		line += s.NL
		st, prevLast = apply(s.Fn, st), s.LastByte
	}
	if st == stQuoted {
		return nil, 0, ErrScanner // a quote never closed
	}
	if n := size - carry; n > 0 {
		if n > int64(o.MaxRecord) {
			return nil, 0, ErrScanner
		}
		if !(n == 1 && prevLast == '\r') {
			add(carry, size, carryLine)
		}
	}
	return chunks, rows, nil
}
