package embedded_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// scanConfig is the configuration whose split fans out to scan tasks of
// rangeBytes each, whatever the file's size.
func scanConfig(rows int, rangeBytes int64) *config.Pipeline {
	cfg := chunkedConfig(rows)
	cfg.ScanSplit = config.ScanSplit{MinBytes: 1, RangeBytes: rangeBytes}
	return cfg
}

// TestScanSplitMatchesOneStream runs the same files through the one-stream
// split and the split fanned out to scan tasks (the AWS path for a huge
// object, here on the embedded engine): same output, error report, counts
// and header, with ranges small enough that records, quoted line breaks
// and blank lines straddle their edges.
func TestScanSplitMatchesOneStream(t *testing.T) {
	dir := t.TempDir()
	orders, fin, _, err := gen.WriteFiles(dir, gen.Options{Rows: 20000, Seed: 13, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	seed, seedRef := testenv.SeedSample(t)
	faultyIn, faultyRef := writeFile(t, "faulty.csv", faulty), writeFile(t, "ref.csv", faultyRef)
	badRef := filepath.Join(badDir, "ref", "reference.csv")
	cases := []struct {
		name, in, ref string
		rows          int
		ranges        []int64
	}{
		{"faulty", faultyIn, faultyRef, 2, []int64{5, 97}},
		{"seed", seed, seedRef, 3000, []int64{4096, 100000}},
		{"generated", orders, fin, 997, []int64{4093, 64 << 10, 1 << 30}},
		{"blank lines", awkward(t, orders), fin, 2500, []int64{3001}},
		{"quoted newlines", filepath.Join(badDir, "quoted_newlines_many_lines.csv"), badRef, 1, []int64{3, 16}},
		{"crlf", filepath.Join(badDir, "crlf.csv"), badRef, 1, []int64{2, 7}},
		{"bom mid-file", filepath.Join(badDir, "bom_mid_file.csv"), badRef, 1, []int64{1, 11}},
	}
	for _, c := range cases {
		one, _ := runLogged(t, chunkedConfig(c.rows), c.in, c.ref)
		for _, rb := range c.ranges {
			t.Run(fmt.Sprintf("%s/range=%d", c.name, rb), func(t *testing.T) {
				got, log := runLogged(t, scanConfig(c.rows, rb), c.in, c.ref)
				if !strings.Contains(log, "split fanned out to scan tasks") || !strings.Contains(log, "scan ranges stitched") {
					t.Fatalf("the split did not fan out:\n%s", log)
				}
				if !bytes.Equal(one.output, got.output) || !bytes.Equal(one.errors, got.errors) {
					t.Fatalf("outputs differ (%d/%d bytes, errors %d/%d bytes)", len(one.output), len(got.output), len(one.errors), len(got.errors))
				}
				o, s := one.batch, got.batch
				if o.State != s.State || o.RowsIn != s.RowsIn || o.RowsOut != s.RowsOut || o.RowsRejected != s.RowsRejected ||
					fmt.Sprint(o.Reasons) != fmt.Sprint(s.Reasons) || fmt.Sprint(o.Header) != fmt.Sprint(s.Header) || len(got.emails) != 1 {
					t.Fatalf("batches differ:\n one stream %+v\n scan tasks %+v", o, s)
				}
				if s.RowsIn == 0 || s.TotalChunks < o.TotalChunks {
					t.Fatalf("%d rows in %d chunks (one stream: %d chunks)", s.RowsIn, s.TotalChunks, o.TotalChunks)
				}
			})
		}
	}
}

// TestScanSplitBadInputCorpus runs the bad-input corpus with every CSV file
// split by scan tasks of about a fifth of the file each: each case must end
// as the corpus expects (a quote never closed or a record too long found by
// the stitch, with the Scanner's exact reason).
func TestScanSplitBadInputCorpus(t *testing.T) {
	corpus := loadCorpus(t)
	ref := filepath.Join(badDir, corpus.Reference)
	for _, c := range corpus.Cases {
		t.Run(c.File, func(t *testing.T) {
			t.Parallel()
			c.scanRange = 8
			if c.Event == nil {
				c.scanRange = max(8, int64(len(c.content(t)))/5)
			}
			runBadCase(t, c, ref)
		})
	}
}
