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

// srec is one record as the Scanner returns it: its bytes and its line.
type srec struct {
	Start, End, Line int64
}

// seqRecords is the Scanner's header end (and the line after it) and the
// records after the header; ok is false when the header is the whole file
// or the Scanner fails on the header.
func seqRecords(in []byte, maxRecord int) (hdrEnd, line int64, recs []srec, scanErr error, ok bool) {
	sc := NewScanner(bytes.NewReader(in), ',', maxRecord)
	h, err := sc.Next()
	if err != nil || sc.Offset() == int64(len(in)) {
		return 0, 0, nil, nil, false
	}
	hdrEnd, line = sc.Offset(), sc.Line()+int64(bytes.Count(h, []byte{'\n'}))
	for {
		r, err := sc.Next()
		if err == io.EOF {
			return hdrEnd, line, recs, nil, true
		}
		if err != nil {
			return hdrEnd, line, recs, err, true
		}
		recs = append(recs, srec{sc.Offset() - int64(len(r)), sc.Offset(), sc.Line()})
	}
}

// chunkRecords scans each chunk's bytes alone, as a worker reads its range.
func chunkRecords(t *testing.T, in []byte, chunks []Cut, rows int) []srec {
	var got []srec
	for _, c := range chunks {
		sc := NewScanner(io.MultiReader(bytes.NewReader([]byte{'\n'}), bytes.NewReader(in[c.Offset:c.End])), ',', 1<<30)
		n := 0
		for {
			r, err := sc.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("chunk %+v: %v", c, err)
			}
			if n == 0 && sc.Line() != 2 {
				t.Fatalf("chunk %+v does not start on a record", c)
			}
			got = append(got, srec{c.Offset + sc.Offset() - 1 - int64(len(r)), c.Offset + sc.Offset() - 1, c.FirstLine + sc.Line() - 2})
			n++
		}
		if n != c.Rows || n > rows || n == 0 {
			t.Fatalf("chunk %+v holds %d records (chunkRows %d)", c, n, rows)
		}
	}
	return got
}

// stitchRanges summarizes in after its header in ranges of rb bytes, each
// from the field lane, and stitches them, as the AWS split does.
func stitchRanges(in []byte, hdrEnd, line int64, rb, maxRecord, rows int) ([]Cut, int, error) {
	o := CutOptions{Delim: ',', MaxRecord: maxRecord, ChunkRows: rows}
	var sums []RangeSummary
	for off := hdrEnd; off < int64(len(in)); off += int64(rb) {
		end := min(off+int64(rb), int64(len(in)))
		s, err := SummarizeRange(in[off:end], off, StateField, o)
		if err != nil {
			return nil, 0, err
		}
		sums = append(sums, s)
	}
	return Stitch(sums, hdrEnd, line, int64(len(in)), o, func(i int, lane uint8) (RangeSummary, error) {
		return SummarizeRange(in[sums[i].Off:sums[i].End], sums[i].Off, lane, o)
	})
}

// checkStitch: the stitched chunks hold exactly the Scanner's records, on
// their lines, and a file the Scanner refuses gives ErrScanner.
func checkStitch(t *testing.T, in []byte, rb, maxRecord, rows int) {
	t.Helper()
	hdrEnd, line, want, scanErr, ok := seqRecords(in, maxRecord)
	if !ok {
		return
	}
	chunks, n, err := stitchRanges(in, hdrEnd, line, rb, maxRecord, rows)
	if scanErr != nil {
		if !errors.Is(err, ErrScanner) {
			t.Fatalf("input %q range %d max %d: err %v, want ErrScanner (the Scanner says %v)", in, rb, maxRecord, err, scanErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("input %q range %d max %d: %v", in, rb, maxRecord, err)
	}
	got := chunkRecords(t, in, chunks, rows)
	if n != len(want) || !reflect.DeepEqual(got, want) && len(want)+len(got) > 0 {
		t.Fatalf("input %q range %d max %d rows %d: %d rows\n got %v\nwant %v\nchunks %+v", in, rb, maxRecord, rows, n, got, want, chunks)
	}
}

func TestStitchTricky(t *testing.T) {
	cases := []string{
		"h1,h2\n1,2\n3,4\n5,6\n", "h\n1\n2", "h1,h2\r\n1,2\r\n3,4\r\n",
		"h1,h2\n\"a\nb\",2\n\"c\r\nd\",4\n5,6\n", "h\n\"a\"\"\nb\"\n\"\"\"\"\n\"x\"\"\",\"\"\"\n\"\n",
		"h,i\na\"b,c\nd\"\ne,\"f\ng\"\n", "h,i\n\"a\"b\"c\nd\",e\n", "\n\r\nh\n\n1\r\n\r\n\n2\n\n3\n4\n\n",
		"\xEF\xBB\xBFh\n1\n2\n", "h\n1\n\r", "h\n1\r2\n\r3\n", "h\n1\n\"2\n3\n4\n", "h\n\"a\nb\"", "h\n\"",
		"h\n123456789012\n1\n", "h\n\"1\n2\n3\n4\n5\n6\n7\"\n1\n", "h\n1\n123456789012", "h\n\",\",\",\"\n\"\"\n",
		"h\n\"\n\n\n\"\n\r\n\r\n\"\"\n",
	}
	for _, in := range cases {
		for _, rows := range []int{1, 2, 3, 100} {
			for _, max := range []int{1, 2, 10, 1 << 20} {
				for _, rb := range []int{1, 2, 3, 5, 7, 64} {
					checkStitch(t, []byte(in), rb, max, rows)
				}
			}
		}
	}
}

// TestStitchGenerated: a generated file, cut by ranges of several sizes.
func TestStitchGenerated(t *testing.T) {
	var orders bytes.Buffer
	if _, err := gen.Write(&orders, io.Discard, gen.Options{Rows: 20000, Seed: 7, BadRate: 0.05}); err != nil {
		t.Fatal(err)
	}
	for _, rb := range []int{997, 64 << 10, 1 << 30} {
		t.Run(fmt.Sprint(rb), func(t *testing.T) { checkStitch(t, orders.Bytes(), rb, 1<<20, 1000) })
	}
}

// FuzzStitch: on any input, the stitched range summaries hold exactly the
// Scanner's records and lines, and fail where it fails.
func FuzzStitch(f *testing.F) {
	f.Add([]byte("a,b\n\"x\ny\",2\r\n3,\"\"\"\""), uint8(1), uint8(3), uint8(10))
	f.Add([]byte("\xEF\xBB\xBFa\n\n1\r\n\r\n2"), uint8(2), uint8(1), uint8(0))
	f.Add([]byte("h\na\"b,\"c\nd\"\n\"e\"\"\nf\""), uint8(1), uint8(2), uint8(4))
	f.Fuzz(func(t *testing.T, in []byte, rows, rangeBytes, maxRecord uint8) {
		max := int(maxRecord)
		if max == 0 {
			max = 1 << 20
		}
		checkStitch(t, in, int(rangeBytes%16)+1, max, int(rows%8)+1)
	})
}
