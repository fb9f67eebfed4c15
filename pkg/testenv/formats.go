package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
)

// Workbook writes recs as text cells of the named sheet, after a first
// sheet "Sheet1" that is not the data, so a reader must honour
// input.sheet rather than take the first sheet.
func Workbook(t testing.TB, sheet string, recs [][]string) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	f.SetCellStr("Sheet1", "A1", "notes, not data")
	if _, err := f.NewSheet(sheet); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		for j, v := range r {
			cell, _ := excelize.CoordinatesToCellName(j+1, i+1)
			if err := f.SetCellStr(sheet, cell, v); err != nil {
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

// JSONLRecords reads JSON Lines as records, header first: every line must
// be an object of string values whose keys are header, in its order (the
// order is part of the output's contract, so it is checked, not sorted).
func JSONLRecords(t testing.TB, b []byte, header []string) [][]string {
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
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// DuckDBParquet is what bench/duckdb/readparquet.mjs reports of a Parquet
// file: its rows as text (nil for NULL), column types, row groups and
// compression codecs.
type DuckDBParquet struct {
	Rows        [][]*string       `json:"rows"`
	Types       map[string]string `json:"types"`
	RowGroups   int               `json:"rowGroups"`
	Compression []string          `json:"compression"`
}

// ReadParquetDuckDB reads the file at path with DuckDB (an independent
// reader, so our writer is not checked against itself), columns by the
// names in cols. Without bench/duckdb's npm package the test is skipped
// with how to install it.
func ReadParquetDuckDB(t testing.TB, path string, cols []string) DuckDBParquet {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "bench", "duckdb")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api")); err != nil {
		t.Skip("DuckDB is not installed: run `make deps` (npm ci --prefix bench/duckdb)")
	}
	out, err := exec.CommandContext(t.Context(), "node", filepath.Join(dir, "readparquet.mjs"), path, strings.Join(cols, ",")).Output()
	if err != nil {
		t.Fatalf("duckdb: %v %s", err, out)
	}
	var res DuckDBParquet
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %.300s", err, out)
	}
	return res
}

// ParquetRecords reads the Parquet file at path through DuckDB as records,
// header first, NULL as the empty string.
func ParquetRecords(t testing.TB, path string, header []string) [][]string {
	t.Helper()
	return ParquetRows(header, ReadParquetDuckDB(t, path, header).Rows)
}

// ParquetRows turns DuckDB's rows into records after header, NULL as "".
func ParquetRows(header []string, rows [][]*string) [][]string {
	recs := [][]string{header}
	for _, r := range rows {
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
