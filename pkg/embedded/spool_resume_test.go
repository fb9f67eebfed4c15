package embedded_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// diskFull is the fault that stops a run as a full disk does: Process
// returns ErrDiskFull and the batch waits to be resumed.
func diskFull(eng *embedded.Engine) error {
	return &os.PathError{Op: "write", Path: filepath.Join(eng.Dir, "bucket", "x"), Err: syscall.ENOSPC}
}

// stopAt runs input on a fresh engine in dir whose fault hook stops the
// run at the fireAt-th time point is reached, then closes the engine: the
// next engine on dir starts from what SQLite and the files hold.
func stopAt(t *testing.T, dir string, cfg *config.Pipeline, input, reference string, point string, fireAt int, adjust func(*embedded.Engine)) {
	t.Helper()
	eng, err := embedded.Open(dir, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if adjust != nil {
		adjust(eng)
	}
	if _, _, err := eng.LoadReference(t.Context(), reference, nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	hits := 0
	eng.Fault = func(p string) error {
		mu.Lock()
		defer mu.Unlock()
		if p == point {
			if hits++; hits >= fireAt {
				return diskFull(eng)
			}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, _, err := eng.Process(ctx, input, nil, nil); !errors.Is(err, embedded.ErrDiskFull) {
		t.Fatalf("run stopped at %s: %v (reached %d times)", point, err, hits)
	}
}

// resume runs input again on a fresh engine in dir.
func resume(t *testing.T, dir string, cfg *config.Pipeline, input string, adjust func(*embedded.Engine)) runOut {
	t.Helper()
	eng, err := embedded.Open(dir, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	if adjust != nil {
		adjust(eng)
	}
	return runOn(t, eng, input, "")
}

func gzipped(t *testing.T, cfg *config.Pipeline) *config.Pipeline {
	t.Helper()
	cfg.Output.Compression = config.CompressGzip
	return cfg
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestResumeWithOtherOutputFormat: a batch stopped with some chunks done
// is resumed, by a fresh engine, with another output compression (a
// configuration change in flight, which the parts path tolerates: parts
// hold plain CSV lines and the merger encodes them). What exists decides,
// not the configuration now: spooled chunks stay in the spool, whose
// output the merger gzips; chunks stored as gzip-era parts are caught up
// into a spool started later. Either way the batch completes with a clean
// run's rows.
func TestResumeWithOtherOutputFormat(t *testing.T) {
	orders, fin, _, err := gen.WriteFiles(t.TempDir(), gen.Options{Rows: 12000, Seed: 21, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	clean := runFile(t, chunkedConfig(2000), orders, fin)
	for _, tc := range []struct {
		name        string
		first, then *config.Pipeline
	}{
		{"spool then gzip", chunkedConfig(2000), gzipped(t, chunkedConfig(2000))},
		{"gzip then spool", gzipped(t, chunkedConfig(2000)), chunkedConfig(2000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			stopAt(t, dir, tc.first, orders, fin, pipeline.PointWorkAfterCount, 3, func(e *embedded.Engine) { e.Workers = 1 })
			got := resume(t, dir, tc.then, orders, nil)
			if got.batch.State != sluice.StateCompleted {
				t.Fatalf("state %s: %s", got.batch.State, got.batch.Reason)
			}
			out := got.output
			if tc.then.OutputCompression() == config.CompressGzip {
				if !strings.HasSuffix(got.batch.OutputKey, ".gz") {
					t.Fatalf("output %s, want the gzip key", got.batch.OutputKey)
				}
				out = gunzip(t, out)
			}
			if !bytes.Equal(out, clean.output) || !bytes.Equal(got.errors, clean.errors) {
				t.Fatalf("outputs differ from a clean run's: %s", firstDiff(out, clean.output))
			}
		})
	}
}

// TestRetryWithOtherBytes: a chunk is written (spool or parts), the run
// stops before its count, and the batch is resumed with a stricter column
// rule, so the redelivered chunk gives other rows. With parts the retry
// overwrites them and the counts agree with the files. With the spool the
// first bytes are in place already: the batch fails, naming the cause,
// rather than complete with counts that disagree with its files.
func TestRetryWithOtherBytes(t *testing.T) {
	orders, fin, _, err := gen.WriteFiles(t.TempDir(), gen.Options{Rows: 6000, Seed: 22, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	stricter := chunkedConfig(2000)
	for i := range stricter.Columns {
		if stricter.Columns[i].Name == "Sales Channel" {
			stricter.Columns[i].Schema = map[string]any{"type": "string", "enum": []any{"Online"}}
		}
	}
	stricter.Limits.MaxRejectRate = nil
	for _, spooled := range []bool{false, true} {
		t.Run(map[bool]string{false: "parts", true: "spool"}[spooled], func(t *testing.T) {
			noSpool := func(e *embedded.Engine) {
				if !spooled {
					e.Spool = nil
				}
			}
			dir := t.TempDir()
			stopAt(t, dir, chunkedConfig(2000), orders, fin, pipeline.PointWorkAfterParts, 1, func(e *embedded.Engine) { noSpool(e); e.Workers = 1 })
			got := resume(t, dir, stricter, orders, noSpool)
			lines := func(b []byte) int { return bytes.Count(b, []byte("\n")) - 1 }
			if !spooled {
				if got.batch.State != sluice.StateCompleted || got.batch.RowsOut != lines(got.output) || got.batch.RowsRejected != lines(got.errors) {
					t.Fatalf("state %s: rows out %d, in the file %d; rejected %d, in the file %d",
						got.batch.State, got.batch.RowsOut, lines(got.output), got.batch.RowsRejected, lines(got.errors))
				}
				return
			}
			if got.batch.State != sluice.StateFailed || !regexp.MustCompile(`^chunk \d+ gave other bytes on retry`).MatchString(got.batch.Reason) ||
				!strings.Contains(got.batch.Reason, "configuration changed") {
				t.Fatalf("state %s, reason %q; want failed, naming the change", got.batch.State, got.batch.Reason)
			}
		})
	}
}

// TestSpoolCrashPoints: a run stopped at each of the spool's
// fault points is resumed by a fresh engine on the same directory, which
// reloads the spool from SQLite and the files (no in-memory state carried
// over); the outputs equal the parts' merge.
func TestSpoolCrashPoints(t *testing.T) {
	orders, fin, _, err := gen.WriteFiles(t.TempDir(), gen.Options{Rows: 12000, Seed: 12, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	parts, partsMan, _ := spoolRun(t, orders, fin, func(e *embedded.Engine) { e.Spool = nil })
	for _, point := range pipeline.SpoolPoints {
		t.Run(point, func(t *testing.T) {
			fireAt := 3 // the third chunk's write
			if point != pipeline.PointSpoolAfterWrite {
				fireAt = 1 // once a batch
			}
			cfg := chunkedConfig(2000)
			cfg.Retention.Intermediates = config.Period{D: time.Hour}
			dir := t.TempDir()
			stopAt(t, dir, cfg, orders, fin, point, fireAt, nil)
			got := resume(t, dir, cfg, orders, nil)
			if got.batch.State != sluice.StateCompleted {
				t.Fatalf("batch %s: %s", got.batch.State, got.batch.Reason)
			}
			sameRun(t, point, got, parts, manifestOf(t, got), partsMan)
		})
	}
}

func manifestOf(t *testing.T, got runOut) pipeline.Manifest {
	t.Helper()
	js, err := os.ReadFile(got.eng.Path(got.batch.ManifestKey))
	if err != nil {
		t.Fatal(err)
	}
	var man pipeline.Manifest
	if err := json.Unmarshal(js, &man); err != nil {
		t.Fatal(err)
	}
	return man
}

// TestManyBatchesOneEngine: one engine runs many batches, as `sluice
// serve` does, some failing; afterwards the spool keeps no entry, no state
// row and no open file for any of them.
func TestManyBatchesOneEngine(t *testing.T) {
	dir := t.TempDir()
	eng, err := embedded.Open(dir, chunkedConfig(500), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	in := t.TempDir()
	var fin string
	for i := range 12 {
		sub := filepath.Join(in, string(rune('a'+i)))
		orders, f, _, err := gen.WriteFiles(sub, gen.Options{Rows: 1500, Seed: int64(30 + i), BadRate: 0.05})
		if err != nil {
			t.Fatal(err)
		}
		if fin == "" {
			fin = f
		}
		if i%4 == 3 { // a file whose header lacks a column: its batch fails
			b, _ := os.ReadFile(orders)
			nl := bytes.IndexByte(b, '\n')
			b = append([]byte("just,one,header\n"), b[nl+1:]...)
			if err := os.WriteFile(orders, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got := runOn(t, eng, orders, map[bool]string{true: fin}[i == 0])
		if want := map[bool]sluice.State{true: sluice.StateFailed, false: sluice.StateCompleted}[i%4 == 3]; got.batch.State != want {
			t.Fatalf("file %d: %s (%s), want %s", i, got.batch.State, got.batch.Reason, want)
		}
	}
	if n := eng.Spool.Entries(); n != 0 {
		t.Errorf("%d spool entries kept after 12 batches", n)
	}
	rows, ok := eng.Ledger.(interface {
		SpoolRows(context.Context) (int, error)
	})
	if !ok {
		t.Fatalf("the engine's ledger %T keeps no spool rows", eng.Ledger)
	}
	if n, err := rows.SpoolRows(t.Context()); n != 0 || err != nil {
		t.Errorf("%d spool_state rows after 12 batches (%v)", n, err)
	}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.Contains(p, "/output/spool/") {
			t.Errorf("spool file left open: %s", p)
		}
	}
}

// TestShortSpoolFileFailsBatch: the spool's output file lost bytes it was
// recorded to hold (a power loss, not a process crash) while the run was
// stopped; the resumed batch fails saying so, and no output is written
// with a digest that is not its own.
func TestShortSpoolFileFailsBatch(t *testing.T) {
	orders, fin, _, err := gen.WriteFiles(t.TempDir(), gen.Options{Rows: 8000, Seed: 23, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := chunkedConfig(2000)
	stopAt(t, dir, cfg, orders, fin, pipeline.PointWorkAfterCount, 2, func(e *embedded.Engine) { e.Workers = 1 })
	spooled, _ := filepath.Glob(filepath.Join(dir, "bucket", "*", "output", "spool", "output.csv"))
	if len(spooled) != 1 {
		t.Fatalf("spool files %v", spooled)
	}
	fi, err := os.Stat(spooled[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(spooled[0], fi.Size()-100); err != nil {
		t.Fatal(err)
	}
	got := resume(t, dir, cfg, orders, nil)
	if got.batch.State != sluice.StateFailed || !strings.Contains(got.batch.Reason, "fewer than the") {
		t.Fatalf("state %s, reason %q; want failed, naming the lost bytes", got.batch.State, got.batch.Reason)
	}
	if got.batch.OutputKey != "" {
		t.Fatalf("an output was recorded: %s", got.batch.OutputKey)
	}
}
