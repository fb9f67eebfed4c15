package fault_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/fault"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

// TestDuplicateSends: on a real SQLite queue, every Send and SendBatch of
// a stage arrives twice, and a stage without a queue stays without one.
func TestDuplicateSends(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := db.Queue("merge", sqlite.QueueOptions{})
	d := &pipeline.Deps{Merges: q}
	fault.DuplicateSends(d)
	if d.Chunks != nil || d.Notifies != nil {
		t.Fatalf("DuplicateSends filled queues the stage does not send to: %v %v", d.Chunks, d.Notifies)
	}
	if err := d.Merges.Send(t.Context(), []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := d.Merges.SendBatch(t.Context(), [][]byte{[]byte("b"), []byte("c")}); err != nil {
		t.Fatal(err)
	}
	ms, err := q.Receive(t.Context(), 10, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, m := range ms {
		got[string(m.Body)]++
	}
	for _, b := range []string{"a", "b", "c"} {
		if got[b] != 2 {
			t.Errorf("%q arrived %d times; want 2 (all: %v)", b, got[b], got)
		}
	}
}

// TestCrashAtOff: no spec, no fault; another point than the spec's passes.
// (The crash itself ends the process: cmd/sluice's crash tests run it.)
func TestCrashAtOff(t *testing.T) {
	if f := fault.CrashAt(""); f != nil {
		t.Fatal("an empty spec must give no fault function")
	}
	f := fault.CrashAt(pipeline.PointMergeAfterOutput + "@3")
	for range 5 {
		if err := f(pipeline.PointSplitAfterCreate); err != nil {
			t.Fatal(err)
		}
	}
}
