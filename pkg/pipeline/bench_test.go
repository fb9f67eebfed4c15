package pipeline_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
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
	w := pipeline.NewWorker(d)
	b.ResetTimer()
	for b.Loop() {
		if err := w.Process(ctx, c, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(c.Rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkSplitRanges is the split stage alone, in the default ranges mode,
// on one generated file: the sequential cut against FindCuts on every core.
// SLUICE_BENCH_SPLIT_ROWS sets the file's rows (default 500k, about 60 MB;
// 8M rows make about 1 GB). Each run splits a fresh submission of the same
// file; submitting it is not timed.
func BenchmarkSplitRanges(b *testing.B) {
	rows := 500_000
	if v := os.Getenv("SLUICE_BENCH_SPLIT_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		rows = n
	}
	dir := b.TempDir()
	orders, _, _, err := gen.WriteFiles(filepath.Join(dir, "in"), gen.Options{Rows: rows, Seed: 1, BadRate: 0.03})
	if err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(orders)
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []struct {
		name      string
		threshold int64
	}{{"sequential", math.MaxInt64}, {"parallel", 0}} {
		b.Run(mode.name, func(b *testing.B) {
			old := pipeline.ParallelSplitBytes
			pipeline.ParallelSplitBytes = mode.threshold
			defer func() { pipeline.ParallelSplitBytes = old }()
			eng, err := embedded.Open(filepath.Join(b.TempDir(), "data"), nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			ctx := context.Background()
			sp := pipeline.Splitter{Deps: eng.Deps()}
			b.SetBytes(st.Size())
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				if _, err := eng.SubmitAs(ctx, orders, "orders-"+strconv.Itoa(i)+".csv"); err != nil {
					b.Fatal(err)
				}
				ms, err := eng.Queues[pipeline.QueueIngest].Receive(ctx, 1, time.Hour, time.Second)
				if err != nil || len(ms) != 1 {
					b.Fatalf("ingest: %v", err)
				}
				b.StartTimer()
				if err := sp.Handle(ctx, ms[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
