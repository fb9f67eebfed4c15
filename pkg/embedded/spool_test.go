package embedded_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// spoolRun runs orders on a fresh engine; adjust sets it up first.
func spoolRun(t *testing.T, orders, fin string, adjust func(*embedded.Engine)) (runOut, pipeline.Manifest, int) {
	t.Helper()
	cfg := chunkedConfig(2000)
	cfg.Retention.Intermediates = config.Period{D: time.Hour} // parts stay, to be counted
	eng, err := embedded.Open(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	adjust(eng)
	got := runOn(t, eng, orders, fin)
	if got.batch.State != sluice.StateCompleted {
		t.Fatalf("batch %s: %s", got.batch.State, got.batch.Reason)
	}
	js, err := os.ReadFile(eng.Path(got.batch.ManifestKey))
	if err != nil {
		t.Fatal(err)
	}
	var man pipeline.Manifest
	if err := json.Unmarshal(js, &man); err != nil {
		t.Fatal(err)
	}
	parts, _ := filepath.Glob(filepath.Join(eng.Dir, "bucket", got.batch.ID, "output", "parts", "*.csv"))
	return got, man, len(parts)
}

func sameRun(t *testing.T, name string, got, want runOut, gotMan, wantMan pipeline.Manifest) {
	t.Helper()
	if !bytes.Equal(got.output, want.output) || !bytes.Equal(got.errors, want.errors) {
		t.Fatalf("%s: outputs differ from the parts' merge: %s", name, firstDiff(got.output, want.output))
	}
	if gotMan.Output.SHA256 != wantMan.Output.SHA256 || gotMan.Output.Bytes != wantMan.Output.Bytes ||
		gotMan.Errors.SHA256 != wantMan.Errors.SHA256 || gotMan.Errors.Bytes != wantMan.Errors.Bytes ||
		gotMan.Output.Key[len(got.batch.ID):] != wantMan.Output.Key[len(want.batch.ID):] {
		t.Fatalf("%s: manifest digests %+v %+v, want %+v %+v", name, gotMan.Output, gotMan.Errors, wantMan.Output, wantMan.Errors)
	}
	if got.batch.RowsOut != want.batch.RowsOut || got.batch.RowsRejected != want.batch.RowsRejected {
		t.Fatalf("%s: counts %d/%d, want %d/%d", name, got.batch.RowsOut, got.batch.RowsRejected, want.batch.RowsOut, want.batch.RowsRejected)
	}
}

// TestSpoolEqualsParts: the spooled outputs equal the parts' merge byte
// for byte, with the same digests and counts, whether every chunk was
// appended in place or most fell back to parts (a wait bound of 1 µs and
// more handlers than chunks in order) and were caught up.
func TestSpoolEqualsParts(t *testing.T) {
	orders, fin, _, err := gen.WriteFiles(t.TempDir(), gen.Options{Rows: 30000, Seed: 11, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	parts, partsMan, n := spoolRun(t, orders, fin, func(e *embedded.Engine) { e.Spool = nil })
	if n != 15 {
		t.Fatalf("%d output parts without the spool, want 15", n)
	}
	spooled, man, n := spoolRun(t, orders, fin, func(*embedded.Engine) {})
	sameRun(t, "spooled", spooled, parts, man, partsMan)
	t.Logf("spooled: %d of 15 chunks fell back to parts", n)
	hasty, man, n := spoolRun(t, orders, fin, func(e *embedded.Engine) { e.Spool.Wait = time.Microsecond; e.Workers = 4 })
	sameRun(t, "hasty", hasty, parts, man, partsMan)
	if n == 0 {
		t.Fatal("no chunk fell back to parts with a 1 µs bound: the catch-up was not exercised")
	}
	t.Logf("hasty: %d of 15 chunks fell back to parts", n)
}
