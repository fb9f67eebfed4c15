package csvscan

import (
	"bytes"
	"io"
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
