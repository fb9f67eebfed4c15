package csvscan

import (
	"encoding/binary"
	"math/bits"
)

// Word-at-a-time constants: each byte of a uint64 at once (SWAR).
const (
	ones  = 0x0101010101010101
	low7  = 0x7f7f7f7f7f7f7f7f
	highs = 0x8080808080808080
)

// SplitPlain splits a plain record, the common case, in one pass over its
// bytes: ASCII only, with no quote, CR, LF or NUL. For such a record it
// returns what Split would, and the caller knows without looking again
// that the record is valid UTF-8, holds no NUL and needs no re-encoding on
// output. It reads eight bytes at a time and stops at the first byte that
// makes the record not plain, returning ok false; the caller then takes
// the general path (utf8.Valid, the NUL check, Split), so bytes outside
// the plain set are never decided here. Delimiters outside printable
// ASCII plus tab are never plain.
func SplitPlain(rec []byte, delim byte, fields [][]byte) (out [][]byte, ok bool) {
	fields = fields[:0]
	if !plainDelim(delim) {
		return fields, false
	}
	d := ones * uint64(delim)
	start, i := 0, 0
	for ; i+8 <= len(rec); i += 8 {
		w := binary.LittleEndian.Uint64(rec[i:])
		if notPlain(w) {
			return fields, false
		}
		for m := zeroBytes(w ^ d); m != 0; m &= m - 1 {
			j := i + bits.TrailingZeros64(m)>>3
			fields = append(fields, rec[start:j:j])
			start = j + 1
		}
	}
	if i < len(rec) {
		// The last 1-7 bytes, padded with a byte that is plain and not the
		// delimiter, so the same word test applies.
		w := tailWord(rec, i, delim)
		if notPlain(w) {
			return fields, false
		}
		for m := zeroBytes(w ^ d); m != 0; m &= m - 1 {
			j := i + bits.TrailingZeros64(m)>>3
			fields = append(fields, rec[start:j:j])
			start = j + 1
		}
	}
	return append(fields, rec[start:len(rec):len(rec)]), true
}

// tailWord is rec[i:], 1-7 bytes, as a word whose other bytes are a pad
// that is plain and not the delimiter. A record of 8 bytes or more gives
// its last word, shifted: one load instead of a copy.
func tailWord(rec []byte, i int, delim byte) uint64 {
	pad := uint64('a')
	if delim == 'a' {
		pad = 'b'
	}
	n := uint(len(rec) - i)
	if len(rec) >= 8 {
		w := binary.LittleEndian.Uint64(rec[len(rec)-8:]) >> ((8 - n) * 8)
		return w | (ones*pad)<<(n*8)
	}
	var tail [8]byte
	copy(tail[:], rec[i:])
	for k := n; k < 8; k++ {
		tail[k] = byte(pad)
	}
	return binary.LittleEndian.Uint64(tail[:])
}

// plainDelim reports whether delim can occur in a plain record.
func plainDelim(delim byte) bool {
	return delim == '\t' || (delim >= ' ' && delim < 0x7f && delim != '"')
}

// zeroBytes has the high bit of each byte of w that is zero set, and no
// other bit. w must have no high bit set: then no byte's sum carries into
// the next, so the test is exact.
func zeroBytes(w uint64) uint64 { return ^(w + low7) & highs }

// notPlain reports whether w holds a byte ≥ 0x80, a quote, CR, LF or NUL.
func notPlain(w uint64) bool {
	if w&highs != 0 {
		return true
	}
	nz := (w + low7) & ((w ^ ones*'"') + low7) & ((w ^ ones*'\r') + low7) & ((w ^ ones*'\n') + low7)
	return ^nz&highs != 0
}

// PlainDelims reports whether b is plain, as SplitPlain means it, and
// then how many delimiters it holds. A caller that appended values it
// joined with n delimiters learns in one pass that none of them needs
// quoting: b is plain and holds exactly those n.
func PlainDelims(b []byte, delim byte) (n int, ok bool) {
	if !plainDelim(delim) {
		return 0, false
	}
	d := ones * uint64(delim)
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		if notPlain(w) {
			return 0, false
		}
		n += bits.OnesCount64(zeroBytes(w ^ d))
	}
	for _, c := range b[i:] {
		if c >= 0x80 || c == 0 || c == '"' || c == '\r' || c == '\n' {
			return 0, false
		}
		if c == delim {
			n++
		}
	}
	return n, true
}
