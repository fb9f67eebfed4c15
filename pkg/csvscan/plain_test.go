package csvscan

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// plainByWalk is the definition SplitPlain must meet, byte by byte.
func plainByWalk(rec []byte, delim byte) bool {
	if !plainDelim(delim) {
		return false
	}
	for _, c := range rec {
		if c >= 0x80 || c == 0 || c == '"' || c == '\r' || c == '\n' {
			return false
		}
	}
	return true
}

// checkSplitPlain holds SplitPlain to the general path: plain exactly
// when no byte is outside the plain set, and then the same fields as
// Split, valid UTF-8 and no NUL.
func checkSplitPlain(t *testing.T, rec []byte, delim byte) {
	t.Helper()
	got, ok := SplitPlain(rec, delim, nil)
	if want := plainByWalk(rec, delim); ok != want {
		t.Fatalf("SplitPlain(%q, %q) ok = %v, want %v", rec, delim, ok, want)
	}
	if !ok {
		return
	}
	want, _, err := Split(rec, delim, nil, nil)
	if err != nil || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("SplitPlain(%q, %q) = %q, Split = %q, %v", rec, delim, got, want, err)
	}
	if !utf8.Valid(rec) || bytes.IndexByte(rec, 0) >= 0 {
		t.Fatalf("SplitPlain(%q) plain, but invalid UTF-8 or NUL", rec)
	}
	for _, f := range got {
		if NeedsQuotes(f, delim) {
			t.Fatalf("SplitPlain(%q): field %q needs quotes", rec, f)
		}
	}
}

func TestSplitPlain(t *testing.T) {
	cases := []string{
		"", ",", ",,", "a", "a,b", "abcdefg,", "abcdefgh", "abcdefgh,", ",abcdefgh", "1234567,12345678,,x",
		"535113847,\"Korea, South\",Snacks", "a\rb", "a\nb", "a\x00b", "é,x", "\xff", "abcdefghijklmno\"",
		"abcdefghijklmn\x80", "aaaaaaaa\x00", "x;y,z", "tab\there", "bbbbbbb,b",
	}
	for _, c := range cases {
		for _, d := range []byte{',', ';', '\t', '|', 'a', 'b', '"', '\n', 0, 0xC3} {
			checkSplitPlain(t, []byte(c), d)
		}
	}
	// Random records over a small alphabet that hits every class, every
	// length across the word boundaries.
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("ab,;\t\"\r\n\x00\x7f\x80\xc3\xa9 ")
	for range 20000 {
		rec := make([]byte, rng.IntN(40))
		for i := range rec {
			if rng.IntN(8) == 0 {
				rec[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				rec[i] = alphabet[rng.IntN(4)]
			}
		}
		checkSplitPlain(t, rec, ",;\tab"[rng.IntN(5)])
	}
}

func FuzzSplitPlain(f *testing.F) {
	f.Add([]byte("535113847,Korea,Snacks,Online,C,10/8/14,Asia,10/23/14"), byte(','))
	f.Add([]byte("a,\"b\",c\x00\x80"), byte(';'))
	f.Add([]byte("abcdefgh\tabcdefg"), byte('\t'))
	f.Fuzz(func(t *testing.T, rec []byte, delim byte) {
		checkSplitPlain(t, rec, delim)
	})
}

func TestPlainDelims(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	alphabet := []byte("ab,;\t\"\r\n\x00\x7f\x80\xc3\xa9 ")
	for range 20000 {
		rec := make([]byte, rng.IntN(40))
		for i := range rec {
			if rng.IntN(8) == 0 {
				rec[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				rec[i] = alphabet[rng.IntN(4)]
			}
		}
		delim := ",;\tab\""[rng.IntN(6)]
		n, ok := PlainDelims(rec, delim)
		if want := plainByWalk(rec, delim); ok != want {
			t.Fatalf("PlainDelims(%q, %q) ok = %v, want %v", rec, delim, ok, want)
		}
		if ok && n != bytes.Count(rec, []byte{delim}) {
			t.Fatalf("PlainDelims(%q, %q) = %d", rec, delim, n)
		}
	}
}
