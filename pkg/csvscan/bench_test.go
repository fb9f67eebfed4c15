package csvscan

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/sluicehq/sluice/pkg/gen"
)

// genOrders is 100k generated orders (some quoted), as the pipeline sees them.
func genOrders(b *testing.B) []byte {
	var orders bytes.Buffer
	if _, err := gen.Write(&orders, io.Discard, gen.Options{Rows: 100000, Seed: 1, BadRate: 0.03}); err != nil {
		b.Fatal(err)
	}
	return orders.Bytes()
}

// BenchmarkScan cuts records without decoding fields: the splitter's loop.
func BenchmarkScan(b *testing.B) {
	data := genOrders(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		s := NewScanner(bytes.NewReader(data), ',', 1<<20)
		for {
			if _, err := s.Next(); err != nil {
				break
			}
		}
	}
}

// BenchmarkScanSplit also decodes every record: the worker's loop.
func BenchmarkScanSplit(b *testing.B) {
	data := genOrders(b)
	b.SetBytes(int64(len(data)))
	var fields [][]byte
	var scratch []byte
	for b.Loop() {
		s := NewScanner(bytes.NewReader(data), ',', 1<<20)
		for {
			rec, err := s.Next()
			if err != nil {
				break
			}
			fields, scratch, _ = Split(TrimEOL(rec), ',', fields, scratch)
		}
	}
}

// BenchmarkAppendRecord encodes output rows.
func BenchmarkAppendRecord(b *testing.B) {
	fields := [][]byte{[]byte("535113847"), []byte("Korea, South"), []byte("Snacks"), []byte("Online"), []byte("C"),
		[]byte("10/8/14"), []byte("Asia"), []byte("10/23/14"), []byte("934"), []byte("152.58"), []byte("97.44"),
		[]byte("142509.72"), []byte("91008.96"), []byte("51500.76")}
	var out []byte
	b.SetBytes(int64(len(AppendRecord(nil, fields, ','))))
	for b.Loop() {
		out = AppendRecord(out[:0], fields, ',')
	}
}

// benchInput is the file named by SLUICE_BENCH_CSV (e.g. a 1 GB one from
// `sluice gen`), or else 100k generated orders in a temporary file: the
// parallel passes read through io.ReaderAt, as the split does.
func benchInput(b *testing.B) (*os.File, int64) {
	p := os.Getenv("SLUICE_BENCH_CSV")
	if p == "" {
		p = filepath.Join(b.TempDir(), "orders.csv")
		if err := os.WriteFile(p, genOrders(b), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	return f, st.Size()
}

// BenchmarkBoundariesSequential finds every record with the Scanner, as
// the sequential split does (the chunk cut points are a count away).
func BenchmarkBoundariesSequential(b *testing.B) {
	f, size := benchInput(b)
	b.SetBytes(size)
	buf := make([]byte, 0, 1<<20)
	for b.Loop() {
		s := NewScannerBuffer(io.NewSectionReader(f, 0, size), ',', 1<<20, buf)
		n := 0
		for {
			if _, err := s.Next(); err != nil {
				break
			}
			n++
		}
		buf = s.Buffer()
	}
}

// BenchmarkBoundariesParallel is FindCuts on every core (GOMAXPROCS; set it
// with -cpu), cutting chunks of 100k records.
func BenchmarkBoundariesParallel(b *testing.B) {
	f, size := benchInput(b)
	b.SetBytes(size)
	for b.Loop() {
		if _, err := FindCuts(f, size, CutOptions{Delim: ',', MaxRecord: 1 << 20, ChunkRows: 100000}); err != nil {
			b.Fatal(err)
		}
	}
}

// genRecords is genOrders cut into records, line endings trimmed.
func genRecords(b *testing.B) [][]byte {
	var recs [][]byte
	s := NewScanner(bytes.NewReader(genOrders(b)), ',', 1<<20)
	for {
		rec, err := s.Next()
		if err != nil {
			return recs
		}
		recs = append(recs, bytes.Clone(TrimEOL(rec)))
	}
}

// BenchmarkRowChecks is the worker's per-row byte work before the column
// rules: "general" is the encoding check, the NUL check and Split, each a
// walk over the record; "plain" is SplitPlain's single pass, falling back
// to the general path for the records that are not plain (quoted fields).
func BenchmarkRowChecks(b *testing.B) {
	recs := genRecords(b)
	var n int64
	for _, r := range recs {
		n += int64(len(r))
	}
	general := func(rec []byte, fields [][]byte, scratch []byte) ([][]byte, []byte) {
		if !utf8.Valid(rec) || bytes.IndexByte(rec, 0) >= 0 {
			return fields, scratch
		}
		fields, scratch, _ = Split(rec, ',', fields, scratch)
		return fields, scratch
	}
	b.Run("general", func(b *testing.B) {
		var fields [][]byte
		var scratch []byte
		b.SetBytes(n)
		b.ReportAllocs()
		c0 := cpuNS()
		for b.Loop() {
			for _, rec := range recs {
				fields, scratch = general(rec, fields, scratch)
			}
		}
		perRow(b, c0, len(recs))
	})
	b.Run("plain", func(b *testing.B) {
		var fields [][]byte
		var scratch []byte
		b.SetBytes(n)
		b.ReportAllocs()
		c0 := cpuNS()
		for b.Loop() {
			for _, rec := range recs {
				var ok bool
				if fields, ok = SplitPlain(rec, ',', fields); !ok {
					fields, scratch = general(rec, fields, scratch)
				}
			}
		}
		perRow(b, c0, len(recs))
	})
}

// cpuNS is the process's CPU time so far, user and system: on a shared
// machine a benchmark's wall time also counts the neighbours' work.
func cpuNS() int64 {
	var r syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return r.Utime.Nano() + r.Stime.Nano()
}

// perRow reports the wall and CPU time per row since c0 (cpuNS).
func perRow(b *testing.B, c0 int64, rows int) {
	n := float64(b.N * rows)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/row")
	b.ReportMetric(float64(cpuNS()-c0)/n, "cpu-ns/row")
}
