package embedded_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// TestLoadDuringBatchKeepsItsVersion: a reference loaded while a batch is
// in flight does not change that batch; the next batch uses the new one.
// Each output is byte for byte a clean run's with that reference alone.
func TestLoadDuringBatchKeepsItsVersion(t *testing.T) {
	orders, r1 := testenv.SeedSample(t)
	r2 := testenv.OtherReference(t, r1)
	want1 := runFile(t, nil, orders, r1).output
	want2 := runFile(t, nil, orders, r2).output
	if bytes.Equal(want1, want2) {
		t.Fatal("the two references give the same output; the test could not tell them apart")
	}

	eng, err := embedded.Open(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, _, err := eng.LoadReference(t.Context(), r1, nil); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	eng.Fault = func(point string) error {
		if point == pipeline.PointSplitAfterCreate {
			once.Do(func() {
				if _, _, err := eng.LoadReference(t.Context(), r2, nil); err != nil {
					t.Error(err)
				}
			})
		}
		return nil
	}
	first := runOn(t, eng, orders, "")
	eng.Fault = nil
	second := runOn(t, eng, orders, "")
	if first.batch.RefVersion == "" || first.batch.RefVersion == second.batch.RefVersion {
		t.Fatalf("batches pinned %q and %q; want two different versions", first.batch.RefVersion, second.batch.RefVersion)
	}
	if !bytes.Equal(first.output, want1) {
		t.Errorf("the batch in flight during the load is not R1's output (%d rows out, want R1's)", first.batch.RowsOut)
	}
	if !bytes.Equal(second.output, want2) {
		t.Errorf("the batch after the load is not R2's output (%d rows out)", second.batch.RowsOut)
	}
	if first.batch.ConfigDigest == "" || first.batch.ConfigDigest != second.batch.ConfigDigest {
		t.Errorf("config digests %q, %q; want one, recorded on both", first.batch.ConfigDigest, second.batch.ConfigDigest)
	}
}

// TestInterruptedLoadLeavesCurrent: a load of B that dies after its table
// is written but before it is published leaves A current, and loading A
// again is then a no-op that keeps A's values. With the old single table
// and its "reference.loaded" stamp this enriched with B and exited 0
// (issue 10, finding 2).
func TestInterruptedLoadLeavesCurrent(t *testing.T) {
	_, ra := testenv.SeedSample(t)
	rb := testenv.OtherReference(t, ra)
	dir := t.TempDir()
	eng, err := embedded.Open(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, _, err := eng.LoadReference(t.Context(), ra, nil); err != nil {
		t.Fatal(err)
	}
	a, err := eng.Catalog.Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.LoadReference(t.Context(), rb, nil); err != nil {
		t.Fatal(err)
	}
	// The state a crash between B's table and the CURRENT pointer leaves.
	if err := os.WriteFile(filepath.Join(dir, "reference", "CURRENT"), []byte(a.ID+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, skipped, err := eng.LoadReference(t.Context(), ra, nil)
	if err != nil || !skipped {
		t.Fatalf("loading A again = skipped %v, %v; want skipped (A is current)", skipped, err)
	}
	cur, err := eng.Catalog.Current(t.Context())
	if err != nil || cur.ID != a.ID {
		t.Fatalf("current = %s, %v; want A's %s", cur.ID, err, a.ID)
	}
	ref, err := eng.Catalog.Version(t.Context(), cur.ID)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := ref.Lookup(t.Context(), []string{"535113847"})
	if err != nil || len(vals[0]) == 0 || vals[0][0] != "934" {
		t.Fatalf("A's row = %v, %v; want A's unitsSold 934", vals, err)
	}
	if _, skipped, err := eng.LoadReference(t.Context(), rb, nil); err != nil || skipped {
		t.Fatalf("loading B after the interrupted load = skipped %v, %v; want a load", skipped, err)
	}
}

// TestKilledLoadTempFilesSwept: the temporary files a killed reference
// load leaves are removed when the directory is next opened.
func TestKilledLoadTempFilesSwept(t *testing.T) {
	dir := t.TempDir()
	eng, err := embedded.Open(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng.Close()
	left := []string{".refdata-123", ".refstore-456", ".tmp-789"}
	for _, n := range left {
		if err := os.WriteFile(filepath.Join(dir, "reference", n), make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	eng, err = embedded.Open(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for _, n := range left {
		if _, err := os.Stat(filepath.Join(dir, "reference", n)); !os.IsNotExist(err) {
			t.Errorf("%s survived the next Open: %v", n, err)
		}
	}
}

// TestNoReferenceFailsTheBatch: with no reference loaded, a file whose
// header is fine fails with the reason, instead of its chunks stalling in
// the dead-letter queue.
func TestNoReferenceFailsTheBatch(t *testing.T) {
	orders, _ := testenv.SeedSample(t)
	eng, err := embedded.Open(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	got := runOn(t, eng, orders, "")
	if got.batch.State != "failed" || !strings.Contains(got.batch.Reason, "no reference data is loaded") {
		t.Fatalf("batch %s: %q; want failed for the missing reference", got.batch.State, got.batch.Reason)
	}
	if len(got.emails) != 1 {
		t.Fatalf("%d emails, want the one failure email", len(got.emails))
	}
}

// TestConfigAppendsWhatTheVersionLacks: a configuration changed after the
// load to append a column the reference lacks fails the batch, naming the
// column, instead of dead-lettering every chunk (issue 10, finding 9).
func TestConfigAppendsWhatTheVersionLacks(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	dir := t.TempDir()
	eng, err := embedded.Open(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
		t.Fatal(err)
	}
	eng.Close()
	cfg := config.Default()
	cfg.Reference.Append = append(cfg.Reference.Append, "margin")
	eng, err = embedded.Open(dir, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	got := runOn(t, eng, orders, "")
	if got.batch.State != "failed" || !strings.Contains(got.batch.Reason, `has no column "margin" that reference.append names`) {
		t.Fatalf("batch %s: %q; want failed naming the column", got.batch.State, got.batch.Reason)
	}
}
