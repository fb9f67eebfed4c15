package csvscan

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

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
