package csvscan

import (
	"errors"
	"unicode/utf8"
)

// Errors from Split. The record is malformed; the worker rejects it.
var (
	ErrBareQuote    = errors.New(`bare " in a field that is not quoted`)
	ErrQuote        = errors.New(`extraneous or missing " in a quoted field`)
	ErrUnterminated = errors.New(`quoted field is never closed`)
)

// TrimEOL drops the record's line ending: LF, CRLF, or (on the last line
// of a file, as encoding/csv reads it) a lone CR.
func TrimEOL(rec []byte) []byte {
	if n := len(rec); n > 0 && rec[n-1] == '\n' {
		rec = rec[:n-1]
	}
	if n := len(rec); n > 0 && rec[n-1] == '\r' {
		rec = rec[:n-1]
	}
	return rec
}

// Split decodes a raw record (line ending already trimmed) into fields,
// appended to fields[:0]. Unquoted fields point into rec; quoted ones are
// unescaped into scratch, which is grown to len(rec) once so that no field
// moves. It returns the fields and the scratch buffer for reuse.
func Split(rec []byte, delim byte, fields [][]byte, scratch []byte) ([][]byte, []byte, error) {
	fields = fields[:0]
	if indexQuote(rec) < 0 {
		for {
			i := indexByte(rec, delim)
			if i < 0 {
				return append(fields, rec), scratch, nil
			}
			fields = append(fields, rec[:i:i])
			rec = rec[i+1:]
		}
	}
	if cap(scratch) < len(rec) {
		scratch = make([]byte, 0, len(rec))
	}
	scratch = scratch[:0]
	var err error
	for {
		if len(rec) > 0 && rec[0] == '"' {
			start := len(scratch)
			i := 1
			closed := false
			for i < len(rec) {
				c := rec[i]
				if c == '"' {
					if i+1 < len(rec) && rec[i+1] == '"' {
						scratch = append(scratch, '"')
						i += 2
						continue
					}
					closed = true
					i++
					break
				}
				scratch = append(scratch, c)
				i++
			}
			if !closed {
				if err == nil {
					err = ErrUnterminated
				}
				return append(fields, scratch[start:len(scratch):len(scratch)]), scratch, err
			}
			// After the closing quote only the delimiter or the end may follow;
			// keep what follows as text so no byte is lost, and report it.
			for i < len(rec) && rec[i] != delim {
				if err == nil {
					err = ErrQuote
				}
				scratch = append(scratch, rec[i])
				i++
			}
			fields = append(fields, scratch[start:len(scratch):len(scratch)])
			if i >= len(rec) {
				return fields, scratch, err
			}
			rec = rec[i+1:]
			continue
		}
		i := indexByte(rec, delim)
		f := rec
		if i >= 0 {
			f = rec[:i:i]
		}
		if err == nil && indexQuote(f) >= 0 {
			err = ErrBareQuote
		}
		fields = append(fields, f)
		if i < 0 {
			return fields, scratch, err
		}
		rec = rec[i+1:]
	}
}

// NeedsQuotes reports whether a field must be quoted to survive a round trip.
func NeedsQuotes(f []byte, delim byte) bool {
	for _, c := range f {
		if c == delim || c == '"' || c == '\n' || c == '\r' {
			return true
		}
	}
	return false
}

// AppendField appends f to dst as one CSV field, quoted only when it holds
// the delimiter, a quote or a line break.
func AppendField(dst, f []byte, delim byte) []byte {
	if !NeedsQuotes(f, delim) {
		return append(dst, f...)
	}
	dst = append(dst, '"')
	for _, c := range f {
		if c == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}

// AppendRecord appends fields as one CSV record ending in "\n".
func AppendRecord(dst []byte, fields [][]byte, delim byte) []byte {
	for i, f := range fields {
		if i > 0 {
			dst = append(dst, delim)
		}
		dst = AppendField(dst, f, delim)
	}
	return append(dst, '\n')
}

// AppendStrings is AppendRecord for strings.
func AppendStrings(dst []byte, fields []string, delim byte) []byte {
	for i, f := range fields {
		if i > 0 {
			dst = append(dst, delim)
		}
		dst = AppendField(dst, []byte(f), delim)
	}
	return append(dst, '\n')
}

// ValidUTF8 reports whether the record is valid UTF-8.
func ValidUTF8(b []byte) bool { return utf8.Valid(b) }
