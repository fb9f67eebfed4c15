package services_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// TestGzipInParquetOutOnS3 sends the seed sample gzip-compressed through
// the four services with output.format parquet: the output is one S3
// object, and DuckDB reads from it the embedded CSV run's values, in order.
func TestGzipInParquetOutOnS3(t *testing.T) {
	duck := filepath.Join("..", "bench", "duckdb")
	if _, err := os.Stat(filepath.Join(duck, "node_modules", "@duckdb", "node-api")); err != nil {
		t.Skip("DuckDB is not installed: run `make deps` (npm ci --prefix bench/duckdb)")
	}
	orders, fin := testenv.SeedSample(t)
	const chunkRows = 4000
	s := newStack(t, chunkRows)
	os.WriteFile(s.cfgFile, []byte("chunkRows: 4000\noutput: {format: parquet}\nreference: {types: {unitsSold: integer, unitPrice: number}}\n"), 0o644)
	loadReference(t, s, fin)
	s.startAll()

	plain, _ := os.ReadFile(orders)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	in := filepath.Join(t.TempDir(), "orders.csv.gz")
	os.WriteFile(in, gz.Bytes(), 0o644)
	s.send("ingest", s.upload(in, "orders.csv.gz"))
	b := s.waitBatch("input/orders.csv.gz", 2*time.Minute)
	if b.State != sluice.StateCompleted || !strings.HasSuffix(b.OutputKey, "/output.parquet") {
		t.Fatalf("batch %s %q, output %q", b.State, b.Reason, b.OutputKey)
	}
	pq := filepath.Join(t.TempDir(), "out.parquet")
	os.WriteFile(pq, s.get(b.OutputKey), 0o644)

	wantOut, _, _ := embeddedOutput(t, chunkRows, orders, fin)
	want, err := csv.NewReader(bytes.NewReader(wantOut)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), "node", filepath.Join(duck, "readparquet.mjs"), pq, strings.Join(want[0], ",")).Output()
	if err != nil {
		t.Fatalf("duckdb: %v", err)
	}
	var res struct {
		Rows      [][]*string `json:"rows"`
		RowGroups int         `json:"rowGroups"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != len(want)-1 || res.RowGroups != 3 {
		t.Fatalf("%d rows in %d row groups; want %d in 3", len(res.Rows), res.RowGroups, len(want)-1)
	}
	for i, r := range res.Rows {
		for j, v := range r {
			w, g := want[i+1][j], ""
			if v != nil {
				g = *v
			}
			if g != w && !sameNumber(g, w) {
				t.Fatalf("row %d column %q: %q, want %q", i+1, want[0][j], g, w)
			}
		}
	}
}

func sameNumber(a, b string) bool {
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	return err1 == nil && err2 == nil && x == y
}
