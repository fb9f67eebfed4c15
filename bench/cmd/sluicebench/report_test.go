package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestParseGenOutput(t *testing.T) {
	got, err := parseGenOutput("wrote /x/orders.csv (10000000 rows, 299641 faulty) and /x/financials.csv (1000000 rows) in 2.46s\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := (genStats{Rows: 10000000, Bad: 299641, RefRows: 1000000}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := parseGenOutput("something else"); err == nil {
		t.Error("no error for output without counts")
	}
}

func TestGenArgs(t *testing.T) {
	got := genParams{Rows: 10, RefRows: 5, Seed: 1, BadRate: 0.03}.args("d")
	want := []string{"gen", "--rows", "10", "--seed", "1", "--bad-rate", "0.03", "--out", "d", "--ref-rows", "5"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestComputeStages(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	bt := batchTimes{CreatedAt: at(100), SplitAt: at(600), ProcessedAt: at(1600), MergedAt: at(1900), NotifiedAt: at(1950)}
	got, err := computeStages(t0, 2*time.Second, bt)
	if err != nil {
		t.Fatal(err)
	}
	want := stages{Setup: 0.1, Split: 0.5, Process: 1, Merge: 0.3, Notify: 0.05, Exit: 0.05}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"setup", got.Setup, want.Setup}, {"split", got.Split, want.Split}, {"process", got.Process, want.Process},
		{"merge", got.Merge, want.Merge}, {"notify", got.Notify, want.Notify}, {"exit", got.Exit, want.Exit}} {
		if d := c.got - c.want; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	bt.MergedAt = time.Time{}
	if _, err := computeStages(t0, time.Second, bt); err == nil {
		t.Error("no error for a batch without mergedAt")
	}
}

func TestDatasetNameAndSizes(t *testing.T) {
	for rows, want := range map[int]string{1_000_000: "1M", 10_000_000: "10M", 250_000: "250k", 1234: "1234", 1_500_000: "1500k"} {
		if got := datasetName(rows); got != want {
			t.Errorf("datasetName(%d) = %q, want %q", rows, got, want)
		}
	}
	got, err := parseSizes("1000000, 10_000_000")
	if err != nil || !slices.Equal(got, []int{1_000_000, 10_000_000}) {
		t.Errorf("parseSizes = %v, %v", got, err)
	}
	for _, bad := range []string{"", "x", "0", "1,-2"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q): no error", bad)
		}
	}
}

func TestMedian(t *testing.T) {
	id := func(v float64) float64 { return v }
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2}} {
		if got := median(c.in, id); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestRenderTable(t *testing.T) {
	got := renderTable([]string{"a", "bb"}, [][]string{{"xyz", "1"}, {"é", "22"}})
	want := "| a   | bb |\n| --- | -- |\n| xyz | 1  |\n| é   | 22 |\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestFirstDifference(t *testing.T) {
	dir := t.TempDir()
	want := filepath.Join(dir, "want.csv")
	if err := os.WriteFile(want, []byte("h\nrow1\nrow2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file  string
		line  int
		lines int
	}{
		{"h\nrow1\nrow2\n", 0, 3},
		{"h\nrow1\nrowX\n", 3, 2},
		{"h\nrow1\n", 3, 2},
		{"h\nrow1\nrow2\nrow3\n", 4, 3},
		{"", 1, 0},
	} {
		p := filepath.Join(dir, "f.csv")
		if err := os.WriteFile(p, []byte(c.file), 0o644); err != nil {
			t.Fatal(err)
		}
		line, lines, err := firstDifference(p, want)
		if err != nil || line != c.line || (line == 0 && lines != c.lines) {
			t.Errorf("file %q: line %d, %d lines, %v; want line %d", c.file, line, lines, err, c.line)
		}
	}
	if _, _, err := firstDifference(filepath.Join(dir, "missing"), want); err == nil {
		t.Error("no error for a missing file")
	}
}

func TestFirstDifferenceLarge(t *testing.T) {
	dir := t.TempDir()
	row := []byte("123456789,Some Country,Item,Online,H,1/2/13,Region,1/3/13\n")
	big := bytes.Repeat(row, 3<<20/len(row)) // several read buffers
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, big, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if line, lines, err := firstDifference(a, b); err != nil || line != 0 || lines != len(big)/len(row) {
		t.Errorf("equal files: line %d, %d lines, %v", line, lines, err)
	}
	changed := bytes.Clone(big)
	at := 40000*len(row) + 3
	changed[at] = 'X'
	if err := os.WriteFile(b, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if line, _, err := firstDifference(a, b); err != nil || line != 40001 {
		t.Errorf("changed row 40001: line %d, %v", line, err)
	}
}
