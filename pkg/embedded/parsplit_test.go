package embedded_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/csvscan"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
)

// splitThreshold sets pipeline.ParallelSplitBytes for one test. No test in
// this package runs in parallel at the top level, so no other test sees it.
func splitThreshold(t *testing.T, n int64) {
	old := pipeline.ParallelSplitBytes
	pipeline.ParallelSplitBytes = n
	t.Cleanup(func() { pipeline.ParallelSplitBytes = old })
}

// syncBuf is a log sink the engine's goroutines share.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runLogged is runFile with the engine's log kept.
func runLogged(t *testing.T, cfg *config.Pipeline, input, reference string) (runOut, string) {
	t.Helper()
	var log syncBuf
	eng, err := embedded.Open(t.TempDir(), cfg, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return runOn(t, eng, input, reference), log.String()
}

// awkward rewrites a generated file with blank lines (LF and CRLF) between
// records, a blank line before the header and no line break at the end: the
// cases where a chunk's bytes are not simply its records.
func awkward(t *testing.T, src string) string {
	in, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	sc := csvscan.NewScanner(bytes.NewReader(in), ',', 1<<20)
	out := []byte("\r\n")
	for n := 0; ; n++ {
		rec, err := sc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec...)
		switch n % 7 {
		case 3:
			out = append(out, '\n')
		case 5:
			out = append(out, "\r\n\n"...)
		}
	}
	out = bytes.TrimRight(out, "\r\n")
	p := filepath.Join(t.TempDir(), "awkward.csv")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestParallelSplitMatchesSequential runs the same files through the
// sequential split and the parallel one: same output, error report, counts
// and chunks, and the oracle's result.
func TestParallelSplitMatchesSequential(t *testing.T) {
	dir := t.TempDir()
	orders, fin, _, err := gen.WriteFiles(dir, gen.Options{Rows: 20000, Seed: 13, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	faultyIn, faultyRef := writeFile(t, "faulty.csv", faulty), writeFile(t, "ref.csv", faultyRef)
	cases := []struct {
		name, in, ref string
		chunks        []int
	}{
		{"faulty", faultyIn, faultyRef, []int{10000, 2, 1}},
		{"generated", orders, fin, []int{2500, 997}},
		{"blank lines", awkward(t, orders), fin, []int{2500, 101}},
	}
	for _, c := range cases {
		for _, rows := range c.chunks {
			for _, copies := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/chunkRows=%d/copies=%v", c.name, rows, copies), func(t *testing.T) {
					cfg := config.Default()
					cfg.ChunkRows = rows
					cfg.CopyChunks = copies // both modes take their cuts from FindCuts above the threshold
					splitThreshold(t, math.MaxInt64)
					seq, seqLog := runLogged(t, cfg, c.in, c.ref)
					splitThreshold(t, 0)
					par, parLog := runLogged(t, cfg, c.in, c.ref)
					if strings.Contains(seqLog, "found in parallel") || !strings.Contains(parLog, "found in parallel") {
						t.Fatal("the threshold did not choose the split path")
					}
					if c.name != "blank lines" {
						expectOracle(t, par, c.in, c.ref)
					}
					if !bytes.Equal(seq.output, par.output) || !bytes.Equal(seq.errors, par.errors) {
						t.Fatalf("outputs differ (%d/%d bytes, errors %d/%d bytes)", len(seq.output), len(par.output), len(seq.errors), len(par.errors))
					}
					s, p := seq.batch, par.batch
					if s.State != p.State || s.RowsIn != p.RowsIn || s.RowsOut != p.RowsOut || s.RowsRejected != p.RowsRejected ||
						s.TotalChunks != p.TotalChunks || fmt.Sprint(s.Reasons) != fmt.Sprint(p.Reasons) || fmt.Sprint(s.Header) != fmt.Sprint(p.Header) {
						t.Fatalf("batches differ:\n seq %+v\n par %+v", s, p)
					}
					if s.RowsIn == 0 {
						t.Fatal("no rows: the comparison proves nothing")
					}
					if strings.Contains(parLog, "ranges=true") == copies {
						t.Fatalf("copies=%v, but the parallel split cut the other mode:\n%s", copies, parLog)
					}
				})
			}
		}
	}
}

// TestParallelSplitBadInputCorpus runs the bad-input corpus with every file
// split by the parallel path, in ranges mode (the default) and with copies:
// each case must end as the corpus expects.
func TestParallelSplitBadInputCorpus(t *testing.T) {
	splitThreshold(t, 0)
	corpus := loadCorpus(t)
	ref := filepath.Join(badDir, corpus.Reference)
	for _, copies := range []bool{false, true} {
		for _, c := range corpus.Cases {
			c.copies = copies
			t.Run(fmt.Sprintf("%s/copies=%v", c.File, copies), func(t *testing.T) {
				t.Parallel()
				runBadCase(t, c, ref)
			})
		}
	}
}
