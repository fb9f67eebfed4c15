package services_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// firstRecords writes the header and first n records of a CSV file to a
// new file.
func firstRecords(t *testing.T, path string, n int) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")[:n+1]
	p := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(p, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// feedInput is a comma-separated file as feed f's input: with its
// delimiter, gzip-compressed for .csv.gz, or text cells of the sheet
// "Orders" (after a first sheet that is not the data) for .xlsx.
func feedInput(t *testing.T, raw []byte, f serviceFeed) []byte {
	t.Helper()
	switch f.ext {
	case ".csv.gz":
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(recode(t, raw, f.delim))
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	case ".xlsx":
		return testenv.Workbook(t, "Orders", readCSV(t, raw, ','))
	}
	return recode(t, raw, f.delim)
}

// feedOutput reads a batch output as records, header first, by its key's
// extension: CSV with delim, JSON Lines (keys must be the header in
// order), or Parquet read by DuckDB (bench/duckdb), columns by header.
func feedOutput(t *testing.T, s *stack, key string, delim rune, header []string) [][]string {
	t.Helper()
	b := s.get(key)
	switch filepath.Ext(key) {
	case ".jsonl":
		return testenv.JSONLRecords(t, b, header)
	case ".parquet":
		return parquetRecords(t, b, header)
	}
	return readCSV(t, b, delim)
}

// parquetRecords writes the stored output to a file for DuckDB to read.
func parquetRecords(t *testing.T, b []byte, header []string) [][]string {
	t.Helper()
	pq := filepath.Join(t.TempDir(), "out.parquet")
	if err := os.WriteFile(pq, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return testenv.ParquetRecords(t, pq, header)
}
