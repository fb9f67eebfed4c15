package embedded_test

import (
	"bytes"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// formatsConfig is the default job, cut into several chunks so outputs
// are merged from several parts, with the reference columns typed.
func formatsConfig(out config.Output) *config.Pipeline {
	cfg := config.Default()
	cfg.ChunkRows = 3000
	cfg.Output = out
	cfg.Reference.Types = map[string]string{"unitsSold": "integer", "unitPrice": "number", "unitCost": "number",
		"totalRevenue": "number", "totalCost": "number", "totalProfit": "number"}
	return cfg
}

// TestOutputFormats runs the seed sample once per output format and checks
// every output against the plain CSV output of the same run, value for
// value and in the same order. Parquet is read back by DuckDB.
func TestOutputFormats(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	base := runFile(t, formatsConfig(config.Output{}), orders, fin)
	if base.batch.State != sluice.StateCompleted {
		t.Fatalf("csv: %s %q", base.batch.State, base.batch.Reason)
	}
	want := readCSVRows(t, base.output)
	cases := []struct {
		out  config.Output
		ext  string
		read func(t *testing.T, path string, header []string) [][]string
	}{
		{config.Output{Compression: "gzip"}, ".csv.gz", func(t *testing.T, p string, _ []string) [][]string { return readCSVRows(t, decompress(t, p)) }},
		{config.Output{Compression: "zstd"}, ".csv.zst", func(t *testing.T, p string, _ []string) [][]string { return readCSVRows(t, decompress(t, p)) }},
		{config.Output{Format: "jsonl"}, ".jsonl", readJSONL},
		{config.Output{Format: "jsonl", Compression: "gzip"}, ".jsonl.gz", readJSONL},
		{config.Output{Format: "parquet"}, ".parquet", readParquetDuckDB},
	}
	for _, c := range cases {
		t.Run(strings.TrimPrefix(c.ext, "."), func(t *testing.T) {
			got := runFile(t, formatsConfig(c.out), orders, fin)
			if got.batch.State != sluice.StateCompleted {
				t.Fatalf("%s %q", got.batch.State, got.batch.Reason)
			}
			if !strings.HasSuffix(got.batch.OutputKey, "/output"+c.ext) {
				t.Fatalf("output key %q, want …/output%s", got.batch.OutputKey, c.ext)
			}
			if !bytes.Equal(got.errors, base.errors) {
				t.Fatal("the error report is not the CSV one of the plain run")
			}
			rows := c.read(t, got.eng.Path(got.batch.OutputKey), want[0])
			sameValues(t, formatsConfig(c.out), want, rows)
		})
	}
}

func readCSVRows(t *testing.T, b []byte) [][]string {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func decompress(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader
	switch {
	case strings.HasSuffix(path, ".gz"):
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		r = f
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readParquetDuckDB reads the file with DuckDB (bench/duckdb's package),
// and checks the column types, the row groups (one per part) and ZSTD.
func readParquetDuckDB(t *testing.T, path string, header []string) [][]string {
	t.Helper()
	res := testenv.ReadParquetDuckDB(t, path, header)
	if res.Types["unitsSold"] != "BIGINT" || res.Types["unitPrice"] != "DOUBLE" || res.Types["Country"] != "VARCHAR" {
		t.Fatalf("column types %v", res.Types)
	}
	if res.RowGroups != 4 { // 10000 rows in chunks of 3000
		t.Fatalf("%d row groups, want 4 (one per part)", res.RowGroups)
	}
	if len(res.Compression) != 1 || res.Compression[0] != "ZSTD" {
		t.Fatalf("compression %v, want ZSTD", res.Compression)
	}
	return testenv.ParquetRows(header, res.Rows)
}

// readJSONL reads the (possibly compressed) file as JSON Lines records.
func readJSONL(t *testing.T, path string, header []string) [][]string {
	t.Helper()
	return testenv.JSONLRecords(t, decompress(t, path), header)
}

// sameValues compares rows with the CSV output's: text exactly, numbers
// of typed columns as numbers (a DOUBLE prints 1.50 as 1.5).
func sameValues(t *testing.T, cfg *config.Pipeline, want, got [][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	types := cfg.Reference.Types
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("row %d: %d values, want %d", i, len(got[i]), len(want[i]))
		}
		for j, w := range want[i] {
			g := got[i][j]
			if i > 0 && types[want[0][j]] != "" && g != w {
				gf, err1 := strconv.ParseFloat(g, 64)
				wf, err2 := strconv.ParseFloat(w, 64)
				if err1 == nil && err2 == nil && gf == wf {
					continue
				}
			}
			if g != w {
				t.Fatalf("row %d column %q: %q, want %q", i, want[0][j], g, w)
			}
		}
	}
}

// TestCompressedAndExcelInputs runs the seed sample as gzip (named .csv),
// zstd (named .dat) and as an .xlsx sheet named by input.sheet: each
// output must be byte for byte the plain CSV run's.
func TestCompressedAndExcelInputs(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	base := runFile(t, config.Default(), orders, fin)
	plain, err := os.ReadFile(orders)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	zs, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"orders.csv": gz.Bytes(),
		"orders.dat": zs.EncodeAll(plain, nil),
		"orders.bin": testenv.Workbook(t, "Orders", readCSVRows(t, plain)),
	}
	for name, content := range files {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, content, 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := config.Default()
			cfg.Input.Sheet = "Orders"
			got := runFile(t, cfg, p, fin)
			if got.batch.State != sluice.StateCompleted {
				t.Fatalf("%s %q", got.batch.State, got.batch.Reason)
			}
			if !bytes.Equal(got.output, base.output) || !bytes.Equal(got.errors, base.errors) {
				t.Fatalf("output differs from the plain CSV run's\n%s", firstDiff(got.output, base.output))
			}
		})
	}
}
