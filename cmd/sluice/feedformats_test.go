package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/xuri/excelize/v2"
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
		return workbook(t, recs)
	}
	return []byte(text)
}

func workbook(t *testing.T, recs [][]string) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	f.SetCellStr("Sheet1", "A1", "notes, not data")
	if _, err := f.NewSheet("Orders"); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		for j, v := range r {
			cell, _ := excelize.CoordinatesToCellName(j+1, i+1)
			if err := f.SetCellStr("Orders", cell, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	var b bytes.Buffer
	if err := f.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
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
		return readJSONL(t, b)
	case ".parquet":
		return readParquet(t, path, header)
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func readJSONL(t *testing.T, b []byte) [][]string {
	t.Helper()
	var recs [][]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("line %q: not an object", sc.Text())
		}
		var keys, vals []string
		for dec.More() {
			k, _ := dec.Token()
			v, _ := dec.Token()
			s, ok := v.(string)
			if !ok {
				t.Fatalf("line %q: value %v is not a string", sc.Text(), v)
			}
			keys, vals = append(keys, k.(string)), append(vals, s)
		}
		if len(recs) == 0 {
			recs = append(recs, keys)
		} else if strings.Join(keys, "\x00") != strings.Join(recs[0], "\x00") {
			t.Fatalf("keys %q differ from the first line's %q", keys, recs[0])
		}
		recs = append(recs, vals)
	}
	return recs
}

// readParquet asks DuckDB for the file's rows as text, columns cols.
func readParquet(t *testing.T, path string, cols []string) [][]string {
	t.Helper()
	duck := filepath.Join("..", "..", "bench", "duckdb")
	if _, err := os.Stat(filepath.Join(duck, "node_modules", "@duckdb", "node-api")); err != nil {
		t.Skip("DuckDB is not installed: run `make deps` (npm ci --prefix bench/duckdb)")
	}
	out, err := exec.CommandContext(t.Context(), "node", filepath.Join(duck, "readparquet.mjs"), path, strings.Join(cols, ",")).Output()
	if err != nil {
		t.Fatalf("duckdb: %v", err)
	}
	var res struct {
		Rows [][]*string `json:"rows"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	recs := [][]string{cols}
	for _, r := range res.Rows {
		rec := make([]string, len(r))
		for j, v := range r {
			if v != nil {
				rec[j] = *v
			}
		}
		recs = append(recs, rec)
	}
	return recs
}
