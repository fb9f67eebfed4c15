package main

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// feedInput is the first n records of the seed's orders as a feed's file:
// CSV with delim, gzip-compressed for .csv.gz, or text cells of the sheet
// "Orders" (after a first sheet that is not the data) for .xlsx.
func feedInput(t *testing.T, orders string, n int, delim, ext string) []byte {
	t.Helper()
	text := feedFile(t, orders, n, delim)
	switch ext {
	case ".csv.gz":
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(text))
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	case ".xlsx":
		r := csv.NewReader(strings.NewReader(text))
		r.Comma = []rune(delim)[0]
		recs, err := r.ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return testenv.Workbook(t, "Orders", recs)
	}
	return []byte(text)
}

// readOutput reads a batch output as records, header first, by its
// extension: CSV, JSON Lines (keys must be the header in order), or
// Parquet read by DuckDB through bench/duckdb's package (columns by the
// names in header: Parquet keeps them, DuckDB returns them in that order).
func readOutput(t *testing.T, path string, header []string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	switch filepath.Ext(path) {
	case ".jsonl":
		return testenv.JSONLRecords(t, b, header)
	case ".parquet":
		return testenv.ParquetRecords(t, path, header)
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
