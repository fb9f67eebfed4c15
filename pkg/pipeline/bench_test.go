package pipeline_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// BenchmarkSplitRanges is the split stage alone, in the default ranges mode,
// on one generated file: the sequential cut against FindCuts on every core.
// SLUICE_BENCH_SPLIT_ROWS sets the file's rows (default 500k, about 36 MB;
// 14M rows make about 1 GB); SLUICE_BENCH_SPLIT_FILE names a file made
// beforehand instead (`sluice gen`: the 10 GB measurement). Each run splits
// a fresh submission of the same file; submitting it is not timed. It
// reports the peak RssAnon sampled during the timed splits.
func BenchmarkSplitRanges(b *testing.B) {
	orders := os.Getenv("SLUICE_BENCH_SPLIT_FILE")
	if orders == "" {
		rows := 500_000
		if v := os.Getenv("SLUICE_BENCH_SPLIT_ROWS"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				b.Fatal(err)
			}
			rows = n
		}
		var err error
		if orders, _, _, err = gen.WriteFiles(filepath.Join(b.TempDir(), "in"), gen.Options{Rows: rows, Seed: 1, BadRate: 0.03, RefRows: 1000}); err != nil {
			b.Fatal(err)
		}
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
			var peak peakRssAnon
			defer peak.report(b)
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
				stop := peak.sample()
				err = sp.Handle(ctx, ms[0])
				stop()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// peakRssAnon samples the process's RssAnon (anonymous memory: the heap,
// not the page cache of the files it reads) while a split runs.
type peakRssAnon struct{ kB atomic.Int64 }

func (p *peakRssAnon) sample() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if kB := rssAnonKB(); kB > p.kB.Load() {
				p.kB.Store(kB)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (p *peakRssAnon) report(b *testing.B) {
	if kB := p.kB.Load(); kB > 0 {
		b.ReportMetric(float64(kB)/1024, "peak-RssAnon-MiB")
	}
}

func rssAnonKB() int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
