package csvscan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/pkg/gen"
)

// seqCuts is what the splitter does with the sequential Scanner: the first
// record is the header, then chunks of rows records.
func seqCuts(in []byte, delim byte, maxRecord, rows int) (Cuts, error) {
	sc := NewScanner(bytes.NewReader(in), delim, maxRecord)
	var c Cuts
	var cur *Cut
	n := 0
	for {
		rec, err := sc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Cuts{}, err
		}
		start := sc.Offset() - int64(len(rec))
		if n == 0 {
			c.Header = Cut{Offset: start, End: sc.Offset(), FirstLine: sc.Line(), Rows: 1}
		} else {
			if (n-1)%rows == 0 {
				c.Chunks = append(c.Chunks, Cut{Offset: start, FirstLine: sc.Line()})
				cur = &c.Chunks[len(c.Chunks)-1]
			} else {
				// blank lines between this chunk's records
				cur.Blanks += int(bytes.Count(in[cur.End:start], []byte{'\n'}))
			}
			cur.End = sc.Offset()
			cur.Rows++
			c.Rows++
		}
		n++
	}
	if n == 0 {
		return Cuts{}, io.EOF
	}
	return c, nil
}

// checkCuts compares FindCuts with seqCuts on in, for several range sizes
// (down to one byte, so every boundary falls on every kind of byte).
func checkCuts(t *testing.T, in []byte, maxRecord, rows int) {
	t.Helper()
	want, wantErr := seqCuts(in, ',', maxRecord, rows)
	for _, rb := range []int{1, 2, 3, 5, 7, 64, 1 << 20} {
		for _, w := range []int{1, 3} {
			var streamed []Cut
			onCut := func(i int, c Cut) error {
				if i != len(streamed) {
					t.Fatalf("OnCut(%d) after %d cuts", i, len(streamed))
				}
				streamed = append(streamed, c)
				return nil
			}
			got, err := FindCuts(bytes.NewReader(in), int64(len(in)), CutOptions{Delim: ',', MaxRecord: maxRecord, ChunkRows: rows, Workers: w, RangeBytes: rb, OnCut: onCut})
			if err == nil && !reflect.DeepEqual(streamed, append([]Cut{got.Header}, got.Chunks...)) {
				t.Fatalf("input %q: OnCut gave %+v, FindCuts %+v", in, streamed, got)
			}
			if fmt.Sprint(err) != fmt.Sprint(wantErr) || !reflect.DeepEqual(err, wantErr) && !errors.Is(err, io.EOF) {
				t.Fatalf("input %q max %d rows %d range %d: error %v, want %v", in, maxRecord, rows, rb, err, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("input %q max %d rows %d range %d:\n got %+v\nwant %+v", in, maxRecord, rows, rb, got, want)
			}
		}
	}
}

func TestFindCutsTricky(t *testing.T) {
	cases := map[string]string{
		"plain":                "h1,h2\n1,2\n3,4\n5,6\n",
		"no final newline":     "h\n1\n2",
		"CRLF":                 "h1,h2\r\n1,2\r\n3,4\r\n",
		"quoted newline":       "h1,h2\n\"a\nb\",2\n\"c\r\nd\",4\n5,6\n",
		"escaped quotes":       "h\n\"a\"\"\nb\"\n\"\"\"\"\n\"x\"\"\",\"\"\"\n\"\n",
		"bare quote mid-field": "h,i\na\"b,c\nd\"\ne,\"f\ng\"\n",
		"text after close":     "h,i\n\"a\"b\"c\nd\",e\n",
		"blank lines":          "\n\r\nh\n\n1\r\n\r\n\n2\n\n3\n4\n\n",
		"only blank lines":     "\n\r\n\n",
		"empty":                "",
		"BOM":                  "\xEF\xBB\xBFh\n1\n2\n",
		"BOM only":             "\xEF\xBB\xBF",
		"lone CR last":         "h\n1\n\r",
		"CR not at end":        "h\n1\r2\n\r3\n",
		"open quote":           "h\n1\n\"2\n3\n4\n",
		"quote closes at EOF":  "h\n\"a\nb\"",
		"quote then EOF":       "h\n\"",
		"long record":          "h\n123456789012\n1\n",
		"long quoted":          "h\n\"1\n2\n3\n4\n5\n6\n7\"\n1\n",
		"long last":            "h\n1\n123456789012",
		"quote delim quote":    "h\n\",\",\",\"\n\"\"\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			for _, rows := range []int{1, 2, 3, 100} {
				for _, max := range []int{1, 2, 10, 1 << 20} {
					checkCuts(t, []byte(in), max, rows)
				}
			}
		})
	}
}

// TestFindCutsErrors checks that a bad file gets the Scanner's own error.
func TestFindCutsErrors(t *testing.T) {
	in := []byte("h\n1\n\"2\n3\n")
	_, err := FindCuts(bytes.NewReader(in), int64(len(in)), CutOptions{Delim: ',', MaxRecord: 100, ChunkRows: 2, RangeBytes: 2})
	var oq *OpenQuoteError
	if !errors.As(err, &oq) || oq.QuoteLine != 3 {
		t.Fatalf("err = %v, want the quote opened on line 3", err)
	}
	in = []byte("h\n1\n22222\n3\n")
	_, err = FindCuts(bytes.NewReader(in), int64(len(in)), CutOptions{Delim: ',', MaxRecord: 4, ChunkRows: 2, RangeBytes: 3})
	var tl *TooLongError
	if !errors.As(err, &tl) || tl.Line != 3 {
		t.Fatalf("err = %v, want the record on line 3 too long", err)
	}
	if _, err := FindCuts(bytes.NewReader(nil), 0, CutOptions{Delim: ',', MaxRecord: 4, ChunkRows: 2}); err != io.EOF {
		t.Fatalf("empty input: err = %v, want io.EOF", err)
	}
	if _, err := FindCuts(bytes.NewReader(in), int64(len(in)), CutOptions{Delim: '"', MaxRecord: 4, ChunkRows: 2}); err == nil {
		t.Fatal("a delimiter equal to the quote was accepted")
	}
}

// TestFindCutsQuoteChar: with ' as the quote, a file reads as the same file
// with " and ' swapped reads with ".
func TestFindCutsQuoteChar(t *testing.T) {
	in := []byte("h,'i'\n'a\nb',\"c\n'x''y'\n")
	swapped := bytes.Map(func(r rune) rune {
		switch r {
		case '"':
			return '\''
		case '\'':
			return '"'
		}
		return r
	}, in)
	want, err := seqCuts(swapped, ',', 100, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := FindCuts(bytes.NewReader(in), int64(len(in)), CutOptions{Delim: ',', Quote: '\'', MaxRecord: 100, ChunkRows: 1, RangeBytes: 3})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v\nwant %+v", got, err, want)
	}
	if want.Rows != 2 {
		t.Fatalf("rows = %d, want 2 (the quoted newline is data)", want.Rows)
	}
}

// TestFindCutsGenerated runs a generated file with bad rows and quoted fields.
func TestFindCutsGenerated(t *testing.T) {
	var orders bytes.Buffer
	if _, err := gen.Write(&orders, io.Discard, gen.Options{Rows: 20000, Seed: 7, BadRate: 0.05}); err != nil {
		t.Fatal(err)
	}
	in := orders.Bytes()
	want, err := seqCuts(in, ',', 1<<20, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, rb := range []int{997, 64 << 10} {
		got, err := FindCuts(bytes.NewReader(in), int64(len(in)), CutOptions{Delim: ',', MaxRecord: 1 << 20, ChunkRows: 1000, Workers: 4, RangeBytes: rb})
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("range %d: got %d chunks, %v; want %d chunks", rb, len(got.Chunks), err, len(want.Chunks))
		}
	}
	if len(want.Chunks) != 20 {
		t.Fatalf("%d chunks, want 20", len(want.Chunks))
	}
}

// FuzzFindCuts: on any input, FindCuts agrees with the sequential Scanner,
// records, lines, chunking and errors alike.
func FuzzFindCuts(f *testing.F) {
	f.Add([]byte("a,b\n\"x\ny\",2\r\n3,\"\"\"\""), uint8(1), uint8(3), uint8(10))
	f.Add([]byte("\xEF\xBB\xBFa\n\n1\r\n\r\n2"), uint8(2), uint8(1), uint8(0))
	f.Add([]byte("h\na\"b,\"c\nd\"\n\"e\"\"\nf\""), uint8(1), uint8(2), uint8(4))
	f.Fuzz(func(t *testing.T, in []byte, rows, rangeBytes, maxRecord uint8) {
		max := int(maxRecord)
		if max == 0 {
			max = 1 << 20
		}
		r := int(rows%8) + 1
		want, wantErr := seqCuts(in, ',', max, r)
		got, err := FindCuts(bytes.NewReader(in), int64(len(in)), CutOptions{Delim: ',', MaxRecord: max, ChunkRows: r, Workers: 3, RangeBytes: int(rangeBytes%16) + 1})
		if fmt.Sprint(err) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
			t.Fatalf("input %q max %d rows %d:\n got %+v, %v\nwant %+v, %v", in, max, r, got, err, want, wantErr)
		}
	})
}

// TestFindCutsOnCutStops: an error from OnCut stops FindCuts, which
// returns it, before the rest of the file is cut.
func TestFindCutsOnCutStops(t *testing.T) {
	in := []byte("h\n1\n2\n3\n4\n5\n")
	stop := errors.New("stop")
	calls := 0
	_, err := FindCuts(bytes.NewReader(in), int64(len(in)), CutOptions{Delim: ',', MaxRecord: 100, ChunkRows: 1, RangeBytes: 2,
		OnCut: func(i int, c Cut) error { calls++; return stop }})
	if err != stop || calls != 1 {
		t.Fatalf("err %v after %d calls, want stop after 1", err, calls)
	}
}
