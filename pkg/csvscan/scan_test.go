package csvscan

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

type rec struct {
	line   int64
	fields []string
}

// scanAll runs the Scanner and Split over input.
func scanAll(t testing.TB, input []byte, oneByte bool) ([]rec, error) {
	var r io.Reader = bytes.NewReader(input)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	s := NewScanner(r, ',', 1<<20)
	var out []rec
	var fields [][]byte
	var scratch []byte
	for {
		raw, err := s.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		fields, scratch, err = Split(TrimEOL(raw), ',', fields, scratch)
		if err != nil {
			return out, fmt.Errorf("line %d: %w", s.Line(), err)
		}
		var fs []string
		for _, f := range fields {
			fs = append(fs, string(f))
		}
		out = append(out, rec{s.Line(), fs})
	}
}

// stdAll parses with encoding/csv, the independent reference. It drops
// CR before LF inside quoted fields, which we keep: compare without them.
func stdAll(input []byte) ([]rec, error) {
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(input, bom)))
	r.FieldsPerRecord = -1
	var out []rec
	for {
		fs, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		line, _ := r.FieldPos(0)
		out = append(out, rec{int64(line), fs})
	}
}

func normalize(rs []rec) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%d:%q\n", r.line, strings.Join(r.fields, "\x00"))
	}
	return strings.ReplaceAll(b.String(), `\r\n`, `\n`)
}

func TestEdgeCases(t *testing.T) {
	cases := []struct {
		name, in string
		want     [][]string
		lines    []int64
	}{
		{"plain LF", "a,b\n1,2\n", [][]string{{"a", "b"}, {"1", "2"}}, []int64{1, 2}},
		{"CRLF no final newline", "a,b\r\n1,2\r\n3,4", [][]string{{"a", "b"}, {"1", "2"}, {"3", "4"}}, []int64{1, 2, 3}},
		{"BOM", "\xEF\xBB\xBFa,b\n1,2\n", [][]string{{"a", "b"}, {"1", "2"}}, []int64{1, 2}},
		{"quoted delimiter and quote", "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n", [][]string{{"a", "b"}, {"x,y", `say "hi"`}}, []int64{1, 2}},
		{"embedded newline", "a,b\n\"line1\nline2\",z\n3,4\n", [][]string{{"a", "b"}, {"line1\nline2", "z"}, {"3", "4"}}, []int64{1, 2, 4}},
		{"embedded CRLF kept", "a\r\n\"x\r\ny\"\r\n", [][]string{{"a"}, {"x\r\ny"}}, []int64{1, 2}},
		{"blank lines skipped", "a,b\n\n1,2\r\n\r\n3,4\n", [][]string{{"a", "b"}, {"1", "2"}, {"3", "4"}}, []int64{1, 3, 5}},
		{"empty fields", "a,b,c\n,,\n", [][]string{{"a", "b", "c"}, {"", "", ""}}, []int64{1, 2}},
		{"quoted empty", "a\n\"\"\n", [][]string{{"a"}, {""}}, []int64{1, 2}},
		{"ragged", "a,b\n1\n1,2,3\n", [][]string{{"a", "b"}, {"1"}, {"1", "2", "3"}}, []int64{1, 2, 3}},
		{"mixed endings", "a\r\n1\n2\r\n3", [][]string{{"a"}, {"1"}, {"2"}, {"3"}}, []int64{1, 2, 3, 4}},
		{"quote at buffer end", "a\n\"\"\"\"\n", [][]string{{"a"}, {`"`}}, []int64{1, 2}},
	}
	for _, c := range cases {
		for _, one := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/oneByte=%v", c.name, one), func(t *testing.T) {
				got, err := scanAll(t, []byte(c.in), one)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(c.want) {
					t.Fatalf("%d records, want %d: %v", len(got), len(c.want), got)
				}
				for i := range got {
					if fmt.Sprintf("%q", got[i].fields) != fmt.Sprintf("%q", c.want[i]) || got[i].line != c.lines[i] {
						t.Errorf("record %d = line %d %q, want line %d %q", i, got[i].line, got[i].fields, c.lines[i], c.want[i])
					}
				}
			})
		}
	}
}

func TestMalformed(t *testing.T) {
	cases := []struct {
		in      string
		recs    int
		wantErr error
	}{
		{"a,b\nx\"y,2\n", 2, ErrBareQuote},
		{"a,b\n\"x\"y,2\n", 2, ErrQuote},
	}
	for _, c := range cases {
		s := NewScanner(strings.NewReader(c.in), ',', 1<<10)
		var errs []error
		n := 0
		for {
			raw, err := s.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
			_, _, err = Split(TrimEOL(raw), ',', nil, nil)
			errs = append(errs, err)
		}
		if n != c.recs || !errors.Is(errs[len(errs)-1], c.wantErr) {
			t.Errorf("%q: %d records, last error %v; want %d, %v", c.in, n, errs[len(errs)-1], c.recs, c.wantErr)
		}
	}
}

// TestOpenQuote: a quote that is never closed swallows the rest of the
// input; that is an error naming the quote's line, for a small input as
// for one over the record limit (issue 10, finding 8: a small file was a
// single record of everything after the quote, and "completed").
func TestOpenQuote(t *testing.T) {
	cases := []struct {
		in        string
		max       int
		recs      int   // records before the error
		quoteLine int64 // 0: no error
		tooLong   bool
	}{
		{"a,b\n1,\"never closed\n2,3\n", 1 << 10, 0, 2, false},
		{"a,b\n1,2\n3,\"x\ny\",4\n5,\"open", 1 << 10, 2, 5, false},
		{"a,b\n\"multi\nline\",\"closed\"\n7,\"\"\"\n", 1 << 10, 1, 4, false},
		{"a,b\n1,\"ok\"", 1 << 10, 1, 0, false},
		{"a,b\n1,\"open\n" + strings.Repeat("2,3\n", 500), 100, 0, 2, true},
	}
	for _, c := range cases {
		s := NewScanner(strings.NewReader(c.in), ',', c.max)
		if _, err := s.Next(); err != nil {
			t.Fatal(err)
		}
		n := 0
		var err error
		for {
			if _, err = s.Next(); err != nil {
				break
			}
			n++
		}
		var oq *OpenQuoteError
		var tl *TooLongError
		switch {
		case c.quoteLine == 0 && err != io.EOF:
			t.Errorf("%q: %v, want no error", c.in, err)
		case c.quoteLine == 0:
		case c.tooLong && (!errors.As(err, &tl) || tl.QuoteLine != c.quoteLine):
			t.Errorf("%q: %v (%+v), want too long with the quote of line %d open", c.in, err, tl, c.quoteLine)
		case !c.tooLong && (!errors.As(err, &oq) || oq.QuoteLine != c.quoteLine || !errors.Is(err, ErrOpenQuote)):
			t.Errorf("%q: %v, want the quote of line %d never closed", c.in, err, c.quoteLine)
		}
		if n != c.recs {
			t.Errorf("%q: %d records before the error, want %d", c.in, n, c.recs)
		}
	}
}

func TestTooLong(t *testing.T) {
	in := "a\n" + strings.Repeat("x", 5000) + "\nb\n"
	s := NewScanner(strings.NewReader(in), ',', 1000)
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Next()
	if !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want ErrTooLong on line 2", err)
	}
}

func randomCSV(rng *rand.Rand) []byte {
	pieces := []string{"a", "bc", ",", `"`, "\n", "\r\n", " ", "é", ""}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.UseCRLF = rng.IntN(2) == 0
	nf := 1 + rng.IntN(4)
	for range 1 + rng.IntN(20) {
		var rec []string
		for range nf + rng.IntN(2) {
			var f strings.Builder
			for range rng.IntN(4) {
				f.WriteString(pieces[rng.IntN(len(pieces))])
			}
			rec = append(rec, f.String())
		}
		if len(rec) == 1 && rec[0] == "" {
			rec[0] = "z" // encoding/csv writes a lone empty field as an empty line
		}
		w.Write(rec)
	}
	w.Flush()
	b := buf.Bytes()
	if rng.IntN(3) == 0 {
		b = bytes.TrimRight(b, "\r\n")
	}
	return b
}

func TestAgainstEncodingCSV(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		in := randomCSV(rng)
		want, err := stdAll(in)
		if err != nil {
			continue
		}
		got, err := scanAll(t, in, i%3 == 0)
		if err != nil {
			t.Fatalf("input %q: %v", in, err)
		}
		if normalize(got) != normalize(want) {
			t.Fatalf("input %q:\n got %s\nwant %s", in, normalize(got), normalize(want))
		}
	}
}

func FuzzScanner(f *testing.F) {
	f.Add([]byte("a,b\n\"x\ny\",2\r\n3,\"\"\"\""))
	f.Add([]byte("\xEF\xBB\xBFa\n\n1"))
	f.Fuzz(func(t *testing.T, in []byte) {
		want, err := stdAll(in)
		if err != nil {
			return // we only promise to agree on CSV that encoding/csv accepts
		}
		got, err := scanAll(t, in, false)
		if err != nil {
			t.Fatalf("input %q: %v", in, err)
		}
		if normalize(got) != normalize(want) {
			t.Fatalf("input %q:\n got %s\nwant %s", in, normalize(got), normalize(want))
		}
	})
}

func TestRoundTrip(t *testing.T) {
	fields := [][]byte{[]byte("plain"), []byte("with,comma"), []byte(`q"uote`), []byte("new\nline"), []byte(" lead"), nil}
	out := AppendRecord(nil, fields, ',')
	if want := "plain,\"with,comma\",\"q\"\"uote\",\"new\nline\", lead,\n"; string(out) != want {
		t.Fatalf("AppendRecord = %q, want %q", out, want)
	}
	got, _, err := Split(TrimEOL(out), ',', nil, nil)
	if err != nil || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", fields) && len(got) != len(fields) {
		t.Fatalf("round trip = %q, %v", got, err)
	}
}
