package pipeline_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// BenchmarkProcessChunk is one worker handling one 10,000-row chunk on the
// local adapters: read, decode, validate, look up, write both parts, record
// the rejects and the count. Repeats are idempotent, as redeliveries are.
func BenchmarkProcessChunk(b *testing.B) {
	dir := b.TempDir()
	orders, fin, _, err := gen.WriteFiles(filepath.Join(dir, "in"), gen.Options{Rows: 10000, Seed: 1, BadRate: 0.03})
	if err != nil {
		b.Fatal(err)
	}
	eng, err := embedded.Open(filepath.Join(dir, "data"), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	if _, _, err := eng.LoadReference(ctx, fin, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := eng.Submit(ctx, orders); err != nil {
		b.Fatal(err)
	}
	d := eng.Deps()
	ms, err := eng.Queues[pipeline.QueueIngest].Receive(ctx, 1, time.Minute, time.Second)
	if err != nil || len(ms) != 1 {
		b.Fatalf("ingest: %v", err)
	}
	if err := (pipeline.Splitter{Deps: d}).Handle(ctx, ms[0]); err != nil {
		b.Fatal(err)
	}
	cm, err := eng.Queues[pipeline.QueueChunks].Receive(ctx, 1, time.Hour, time.Second)
	if err != nil || len(cm) != 1 {
		b.Fatalf("chunk: %v", err)
	}
	var c sluice.ChunkReady
	if err := sluice.Decode(cm[0].Body, &c); err != nil {
		b.Fatal(err)
	}
	d.Ledger = uncounted{d.Ledger} // the chunk again each time: the whole path, not the skip (counted_bench_test.go)
	w := pipeline.NewWorker(d)
	b.ResetTimer()
	for b.Loop() {
		if err := w.Process(ctx, c, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(c.Rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
