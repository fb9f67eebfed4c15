package embedded_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// diskUse is the space the files under dir take on disk.
func diskUse(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err == nil {
			n += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestDiskUseAfterBatch: once a batch has ended, what it added to the data
// directory is at most its input (archived) + output + error report + 10%:
// the chunks and per-chunk parts are gone (retention.intermediates: 0s). The
// same ratio as the 1M-row figure in the README, at 100k rows.
func TestDiskUseAfterBatch(t *testing.T) {
	orders, fin, _, err := gen.WriteFiles(t.TempDir(), gen.Options{Rows: 100000, Seed: 3, BadRate: 0.03})
	if err != nil {
		t.Fatal(err)
	}
	cfg := chunkedConfig(5000)
	eng, err := embedded.Open(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
		t.Fatal(err)
	}
	// Reopen, as a new command would: the load's SQLite log folded in.
	eng.Close()
	if eng, err = embedded.Open(eng.Dir, cfg, nil); err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	before := diskUse(t, eng.Dir)
	got := runOn(t, eng, orders, "")
	if got.batch.State != sluice.StateCompleted {
		t.Fatalf("batch %s: %s", got.batch.State, got.batch.Reason)
	}
	// Measured as `sluice run` leaves it: closed, SQLite's log folded in.
	eng.Close()
	added := diskUse(t, eng.Dir) - before
	budget := fileSize(t, orders) + fileSize(t, eng.Path(got.batch.OutputKey)) + fileSize(t, eng.Path(got.batch.ErrorsKey))
	t.Logf("the batch added %d bytes; input + output + errors = %d (%.2f×)", added, budget, float64(added)/float64(budget))
	if added > budget*11/10 {
		t.Errorf("the batch added %d bytes, more than input + output + errors + 10%% = %d", added, budget*11/10)
	}
	r, err := pipeline.RemovePrefixes(t.Context(), eng.Blobs, pipeline.IntermediatePrefixes(got.batch), true)
	if err != nil || len(r.Objects) != 0 {
		t.Fatalf("%d intermediates left (%v)", len(r.Objects), err)
	}
}

// TestRetentionKeepsIntermediatesWhenAsked: with a non-zero period the
// intermediates stay for gc to remove later.
func TestRetentionKeepsIntermediatesWhenAsked(t *testing.T) {
	orders, fin, _, err := gen.WriteFiles(t.TempDir(), gen.Options{Rows: 20000, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	cfg := chunkedConfig(5000)
	cfg.Retention.Intermediates = config.Period{D: time.Hour}
	// Without the spool every chunk stores its two parts.
	eng, err := embedded.Open(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	eng.Spool = nil
	got := runOn(t, eng, orders, fin)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r, err := pipeline.RemovePrefixes(ctx, got.eng.Blobs, pipeline.IntermediatePrefixes(got.batch), true)
	if err != nil || len(r.Objects) != 2*4 {
		t.Fatalf("%d intermediates kept (%v), want 4 output parts and 4 error parts (chunks are ranges of the input, not copies)", len(r.Objects), err)
	}
	// With it (the default) the outputs were written in place: nothing
	// intermediate is left, and the outputs are the same bytes.
	spooled := runFile(t, cfg, orders, fin)
	r, err = pipeline.RemovePrefixes(ctx, spooled.eng.Blobs, pipeline.IntermediatePrefixes(spooled.batch), true)
	if err != nil || len(r.Objects) != 0 {
		t.Fatalf("%d intermediates left by a spooled batch (%v), want none", len(r.Objects), err)
	}
	if !bytes.Equal(got.output, spooled.output) || !bytes.Equal(got.errors, spooled.errors) {
		t.Fatal("the spooled outputs differ from the parts' merge")
	}
}
