package embedded_test

import (
	"os"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
)

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestGCFollowsRetention: gc removes each kind of file once its period has
// passed since the batch ended, no sooner; a dry run removes nothing; a
// batch still running is never touched; archives kept forever stay.
func TestGCFollowsRetention(t *testing.T) {
	orders, fin, _, err := gen.WriteFiles(t.TempDir(), gen.Options{Rows: 12000, Seed: 5, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	cfg := chunkedConfig(5000)
	cfg.Retention = config.Retention{
		Intermediates: config.Period{D: time.Hour},
		Outputs:       config.Period{D: 24 * time.Hour},
		Archives:      config.Period{Forever: true},
	}
	cfg.CopyChunks = true // the seed's layout: gc removes the to_process/ copies too
	got := runFile(t, cfg, orders, fin)
	eng, b := got.eng, got.batch
	// A second file, submitted but not run: its batch has not ended.
	running, err := eng.Submit(t.Context(), fin)
	if err != nil {
		t.Fatal(err)
	}
	ended := b.NotifiedAt
	count := func(kind string, rep embedded.GCReport) int {
		n := 0
		for _, it := range rep.Items {
			if it.Kind == kind {
				n++
			}
			if it.BatchID == running.BatchID {
				t.Fatalf("gc touched the running batch: %+v", it)
			}
		}
		return n
	}
	rep, err := eng.GC(t.Context(), ended.Add(30*time.Minute), false)
	if err != nil || len(rep.Items) != 0 {
		t.Fatalf("gc before any period passed: %+v %v", rep.Items, err)
	}
	rep, err = eng.GC(t.Context(), ended.Add(2*time.Hour), true)
	// The output and error report were spooled in place: no parts.
	if err != nil || count("intermediate", rep) != 3 || rep.Bytes == 0 {
		t.Fatalf("dry run after 2h: %+v %v; want 3 chunks (no parts: the outputs were spooled)", rep.Items, err)
	}
	if !exists(rep.Items[0].Path) {
		t.Fatal("the dry run removed a file")
	}
	rep, err = eng.GC(t.Context(), ended.Add(2*time.Hour), false)
	if err != nil || count("intermediate", rep) != 3 || count("output", rep) != 0 || exists(rep.Items[0].Path) {
		t.Fatalf("gc after 2h: %+v %v", rep.Items, err)
	}
	if !exists(eng.Path(b.OutputKey)) {
		t.Fatal("the output went before its day")
	}
	rep, err = eng.GC(t.Context(), ended.Add(25*time.Hour), false)
	if err != nil || count("output", rep) != 3 || exists(eng.Path(b.OutputKey)) || exists(eng.Path(b.ErrorsKey)) {
		t.Fatalf("gc after 25h: %+v %v; want output, error report and manifest removed", rep.Items, err)
	}
	rep, err = eng.GC(t.Context(), ended.Add(1e5*time.Hour), false)
	if err != nil || count("archive", rep) != 0 || !exists(eng.Path(pipeline.ArchiveKey(b))) {
		t.Fatalf("an archive kept forever went: %+v %v", rep.Items, err)
	}
	if !exists(eng.Path(running.Key)) {
		t.Fatal("the running batch's input went")
	}
}
