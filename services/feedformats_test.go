package services_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/xuri/excelize/v2"
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
		return workbook(t, readCSV(t, raw, ','))
	}
	return recode(t, raw, f.delim)
}

func workbook(t *testing.T, recs [][]string) []byte {
	t.Helper()
	x := excelize.NewFile()
	defer x.Close()
	x.SetCellStr("Sheet1", "A1", "notes, not data")
	if _, err := x.NewSheet("Orders"); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		for j, v := range r {
			cell, _ := excelize.CoordinatesToCellName(j+1, i+1)
			if err := x.SetCellStr("Orders", cell, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	var b bytes.Buffer
	if err := x.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// feedOutput reads a batch output as records, header first, by its key's
// extension: CSV with delim, JSON Lines (keys must be the header in
// order), or Parquet read by DuckDB (bench/duckdb), columns by header.
func feedOutput(t *testing.T, s *stack, key string, delim rune, header []string) [][]string {
	t.Helper()
	b := s.get(key)
	switch filepath.Ext(key) {
	case ".jsonl":
		return jsonlRecords(t, b, header)
	case ".parquet":
		return parquetRecords(t, b, header)
	}
	return readCSV(t, b, delim)
}

func jsonlRecords(t *testing.T, b []byte, header []string) [][]string {
	t.Helper()
	recs := [][]string{header}
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
		if strings.Join(keys, "\x00") != strings.Join(header, "\x00") {
			t.Fatalf("keys %q, want the header %q in its order", keys, header)
		}
		recs = append(recs, vals)
	}
	return recs
}

func parquetRecords(t *testing.T, b []byte, header []string) [][]string {
	t.Helper()
	duck := filepath.Join("..", "bench", "duckdb")
	if _, err := os.Stat(filepath.Join(duck, "node_modules", "@duckdb", "node-api")); err != nil {
		t.Skip("DuckDB is not installed: run `make deps` (npm ci --prefix bench/duckdb)")
	}
	pq := filepath.Join(t.TempDir(), "out.parquet")
	if err := os.WriteFile(pq, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), "node", filepath.Join(duck, "readparquet.mjs"), pq, strings.Join(header, ",")).Output()
	if err != nil {
		t.Fatalf("duckdb: %v", err)
	}
	var res struct {
		Rows [][]*string `json:"rows"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	recs := [][]string{header}
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
