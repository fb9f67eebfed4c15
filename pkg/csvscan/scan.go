// Package csvscan reads RFC 4180 CSV quickly. The Scanner cuts a stream into
// raw records without decoding fields (what the splitter needs); Split
// decodes one raw record into fields (what the worker needs); AppendField
// encodes a field back. Records may hold quoted delimiters, "" escapes and
// line breaks; lines end in LF or CRLF; a leading UTF-8 BOM is dropped; the
// last line may lack its line break.
package csvscan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrTooLong is returned (wrapped) when one record is longer than the limit:
// usually a file that is not CSV, or a quote that is never closed.
var ErrTooLong = errors.New("record longer than the limit")

// TooLongError is the ErrTooLong that Next returns: where the record starts
// and the limit it broke.
type TooLongError struct {
	Line  int64 // the line on which the record starts
	Limit int   // the limit, in bytes
	// QuoteLine is the line of the quote still open when the limit was
	// reached (0: none was open), the usual cause.
	QuoteLine int64
}

func (e *TooLongError) Error() string {
	return fmt.Sprintf("line %d: %v (%d bytes)", e.Line, ErrTooLong, e.Limit)
}

// Is makes errors.Is(err, ErrTooLong) true.
func (e *TooLongError) Is(target error) bool { return target == ErrTooLong }

// ErrOpenQuote is returned (wrapped) when the input ends inside a quoted
// field: a quote was opened and never closed, so it swallowed the rest of
// the input. Whatever the input's size, that is an error, never a record.
var ErrOpenQuote = errors.New("a quote is never closed")

// OpenQuoteError is the ErrOpenQuote that Next returns.
type OpenQuoteError struct {
	Line      int64 // the line on which the record starts
	QuoteLine int64 // the line on which the open quote is
}

func (e *OpenQuoteError) Error() string {
	return fmt.Sprintf("the quote opened on line %d is never closed", e.QuoteLine)
}

// Is makes errors.Is(err, ErrOpenQuote) true.
func (e *OpenQuoteError) Is(target error) bool { return target == ErrOpenQuote }

var bom = []byte{0xEF, 0xBB, 0xBF}

// Scanner yields the raw records of a CSV stream.
type Scanner struct {
	r     io.Reader
	delim byte
	max   int

	buf      []byte
	start    int // first unconsumed byte in buf
	end      int // end of valid data in buf
	eof      bool
	err      error
	first    bool
	line     int64 // line on which the current record starts
	nextLine int64
	offset   int64 // input offset of buf[start]
	quoteAt  int   // where the last quote opened, relative to buf[start]
	oneLine  bool  // recordEnd found the record's only line break
}

// NewScanner reads records from r. maxRecord bounds one record's length
// (and so the scanner's memory); it must be > 0.
func NewScanner(r io.Reader, delim byte, maxRecord int) *Scanner {
	return NewScannerBuffer(r, delim, maxRecord, nil)
}

// NewScannerBuffer is NewScanner reading into buf (reused when it is big
// enough), for callers that scan many streams one after another.
func NewScannerBuffer(r io.Reader, delim byte, maxRecord int, buf []byte) *Scanner {
	size := 1 << 20
	if maxRecord+1 > size {
		size = min(maxRecord+1, 4<<20)
	}
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	return &Scanner{r: r, delim: delim, max: maxRecord, buf: buf[:cap(buf)], first: true, nextLine: 1}
}

// Buffer returns the scanner's buffer, to hand to the next NewScannerBuffer.
func (s *Scanner) Buffer() []byte { return s.buf }

// Line is the input line on which the last record returned by Next starts
// (the first line is 1).
func (s *Scanner) Line() int64 { return s.line }

// Offset is the input offset just past the last record returned.
func (s *Scanner) Offset() int64 { return s.offset }

// fill reads more input, moving unconsumed bytes to the front and growing
// the buffer (up to the record limit) when one record fills it.
func (s *Scanner) fill() {
	if s.start > 0 {
		n := copy(s.buf, s.buf[s.start:s.end])
		s.start, s.end = 0, n
	}
	if s.end == len(s.buf) {
		if len(s.buf) > s.max {
			return // the caller reports ErrTooLong
		}
		nb := make([]byte, min(2*len(s.buf), s.max+1))
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	for s.end < len(s.buf) && !s.eof {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err == io.EOF {
			s.eof = true
		} else if err != nil {
			s.err, s.eof = err, true
		}
		if n > 0 {
			break
		}
	}
}

// Next returns the next raw record, with its line ending (if it had one).
// The slice is valid until the next call. At the end it returns io.EOF.
// Empty lines are skipped, as encoding/csv does.
func (s *Scanner) Next() ([]byte, error) {
	for {
		rec, err := s.next()
		if err != nil {
			return nil, err
		}
		if len(rec) <= 2 && len(TrimEOL(rec)) == 0 {
			continue // a blank line: "\n" or "\r\n"
		}
		return rec, nil
	}
}

func (s *Scanner) next() ([]byte, error) {
	if s.first {
		s.first = false
		for s.end-s.start < 3 && !s.eof {
			s.fill()
		}
		if bytes.HasPrefix(s.buf[s.start:s.end], bom) {
			s.start += 3
			s.offset += 3
		}
	}
	// scanned: how far into the pending bytes the record end was searched;
	// inQuote and fieldStart carry the quote state across refills.
	scanned := 0
	inQuote, fieldStart := false, true
	for {
		data := s.buf[s.start:s.end]
		if i, ok := s.recordEnd(data, &scanned, &inQuote, &fieldStart); ok {
			if i+1 > s.max {
				return nil, &TooLongError{Line: s.nextLine, Limit: s.max}
			}
			if s.oneLine {
				return s.takeLine(i + 1), nil
			}
			return s.take(i + 1), nil
		}
		if len(data) > s.max {
			e := &TooLongError{Line: s.nextLine, Limit: s.max}
			if inQuote {
				e.QuoteLine = s.quoteLine(data)
			}
			return nil, e
		}
		if s.eof {
			if s.err != nil {
				return nil, s.err
			}
			if len(data) == 0 {
				return nil, io.EOF
			}
			if inQuote {
				return nil, &OpenQuoteError{Line: s.nextLine, QuoteLine: s.quoteLine(data)}
			}
			return s.take(len(data)), nil // the last record, without a line break
		}
		s.fill()
	}
}

// quoteLine is the line of the quote that opened at s.quoteAt in data.
func (s *Scanner) quoteLine(data []byte) int64 {
	return s.nextLine + int64(bytes.Count(data[:min(s.quoteAt, len(data))], []byte{'\n'}))
}

// takeLine is take for a record known to hold one line break, its last
// byte: most records, which need not be counted again.
func (s *Scanner) takeLine(n int) []byte {
	rec := s.buf[s.start : s.start+n]
	s.start += n
	s.offset += int64(n)
	s.line = s.nextLine
	s.nextLine++
	return rec
}

func (s *Scanner) take(n int) []byte {
	rec := s.buf[s.start : s.start+n]
	s.start += n
	s.offset += int64(n)
	s.line = s.nextLine
	s.nextLine += int64(bytes.Count(rec, []byte{'\n'}))
	return rec
}

// recordEnd finds the newline that ends the record at the start of data,
// resuming at *from with the quote state it had there.
func (s *Scanner) recordEnd(data []byte, from *int, inQuote, fieldStart *bool) (int, bool) {
	i := *from
	s.oneLine = false
	if !*inQuote {
		// Fast path: no quote before the next newline. From the record's
		// start (i = 0) that newline is its only one.
		nl := bytes.IndexByte(data[i:], '\n')
		if nl >= 0 && bytes.IndexByte(data[i:i+nl], '"') < 0 {
			s.oneLine = i == 0
			return i + nl, true
		}
	}
	for ; i < len(data); i++ {
		c := data[i]
		switch {
		case *inQuote:
			if c == '"' {
				if i+1 >= len(data) {
					if !s.eof {
						*from = i // decide once the next byte is here
						return 0, false
					}
					*inQuote = false
				} else if data[i+1] == '"' {
					i++
				} else {
					*inQuote = false
				}
			}
		case c == '\n':
			return i, true
		case c == s.delim:
			*fieldStart = true
			continue
		case c == '"' && *fieldStart:
			*inQuote = true
			s.quoteAt = i
		}
		*fieldStart = false
	}
	*from = i
	return 0, false
}
