package embedded_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// TestRangesAndCopiesAgree: chunks read as byte ranges of the archived
// input give the same output, error report and counts as chunks written
// to to_process/ (the seed's layout), on the seed sample, a generated file
// and the bad-input files whose records are hardest to cut (a BOM inside
// the file, CRLF, line breaks in quotes), with chunks small enough that
// many records sit on a range's edge. Only the copies mode writes chunks.
func TestRangesAndCopiesAgree(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	genOrders, genFin, _, err := gen.WriteFiles(t.TempDir(), gen.Options{Rows: 3000, Seed: 7, BadRate: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	badRef := filepath.Join(badDir, "ref", "reference.csv")
	type tc struct {
		name, input, ref string
		rows             int // chunkRows
	}
	cases := []tc{{"seed", orders, fin, 7}, {"generated", genOrders, genFin, 7}}
	// One record per chunk: every record starts a range.
	for _, f := range []string{"bom_mid_file.csv", "crlf.csv", "mixed_line_endings.csv", "quoted_newlines_many_lines.csv", "lone_cr_in_field.csv", "ragged_rows.csv"} {
		cases = append(cases, tc{f, filepath.Join(badDir, f), badRef, 1})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := chunkedConfig(c.rows)
			ranges := runFile(t, cfg, c.input, c.ref)
			cfg = chunkedConfig(c.rows)
			cfg.CopyChunks = true
			copies := runFile(t, cfg, c.input, c.ref)
			rb, cb := ranges.batch, copies.batch
			if rb.State != cb.State || rb.RowsIn != cb.RowsIn || rb.RowsOut != cb.RowsOut || rb.RowsRejected != cb.RowsRejected || rb.TotalChunks != cb.TotalChunks {
				t.Fatalf("ranges: %s %d in %d out %d rejected %d chunks; copies: %s %d in %d out %d rejected %d chunks",
					rb.State, rb.RowsIn, rb.RowsOut, rb.RowsRejected, rb.TotalChunks, cb.State, cb.RowsIn, cb.RowsOut, cb.RowsRejected, cb.TotalChunks)
			}
			if rb.TotalChunks < 2 {
				t.Fatalf("%d chunks: the case does not cross a range's edge", rb.TotalChunks)
			}
			if len(ranges.output) == 0 || !bytes.Equal(ranges.output, copies.output) {
				t.Errorf("outputs differ (%d and %d bytes)", len(ranges.output), len(copies.output))
			}
			re, _ := os.ReadFile(ranges.eng.Path(rb.ErrorsKey))
			ce, _ := os.ReadFile(copies.eng.Path(cb.ErrorsKey))
			if !bytes.Equal(re, ce) {
				t.Errorf("error reports differ:\n%s\n---\n%s", re, ce)
			}
			if n := countChunks(t, ranges); n != 0 {
				t.Errorf("ranges mode wrote %d chunk copies", n)
			}
		})
	}
}

// countChunks counts the files under the batch's to_process/, kept or not.
func countChunks(t *testing.T, r runOut) int {
	m, err := filepath.Glob(filepath.Join(filepath.Dir(r.eng.Path(pipeline.ChunkKey(r.batch, 0))), "*"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}
