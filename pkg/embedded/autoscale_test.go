package embedded_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice/pkg/autoscale"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/metrics"
	"github.com/sluicehq/sluice/pkg/pipeline"
)

// TestWorkerPoolFollowsBacklog: hundreds of chunk messages make the process
// pool grow to its maximum within two policy periods, and it returns to its
// minimum once drained; the workers gauges show both.
func TestWorkerPoolFollowsBacklog(t *testing.T) {
	dir := t.TempDir()
	orders, fin, _, err := gen.WriteFiles(filepath.Join(dir, "in"), gen.Options{Rows: 40000, Seed: 2, BadRate: 0.02})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.ChunkRows = 100 // 400 chunk messages
	eng, err := embedded.Open(filepath.Join(dir, "data"), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	m := metrics.New()
	eng.Metrics = m
	const period = 150 * time.Millisecond
	eng.Autoscale = map[string]autoscale.Policy{"process": {Min: 1, Max: 6, TargetLatency: 100 * time.Millisecond, ScaleInCooldown: 400 * time.Millisecond}}
	eng.AutoscalePeriod = period
	// Each chunk takes ~15ms more, as real work on a busier machine would,
	// so the backlog outlives a few policy periods.
	eng.Fault = func(p string) error {
		if p == pipeline.PointWorkAfterParts {
			time.Sleep(15 * time.Millisecond)
		}
		return nil
	}
	if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	current := func() float64 { return testutil.ToFloat64(m.Workers.WithLabelValues("process", "current")) }
	desired := func() float64 { return testutil.ToFloat64(m.Workers.WithLabelValues("process", "desired")) }
	var mu sync.Mutex
	var firstBacklog, reachedMax time.Time
	stopWatch := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(10 * time.Millisecond):
			}
			d, _ := eng.Queues[pipeline.QueueChunks].Depth(ctx)
			mu.Lock()
			if firstBacklog.IsZero() && d.Visible > 0 {
				firstBacklog = time.Now()
			}
			if reachedMax.IsZero() && current() == 6 && desired() == 6 {
				reachedMax = time.Now()
			}
			mu.Unlock()
		}
	}()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	sub, err := eng.Submit(ctx, orders)
	if err != nil {
		t.Fatal(err)
	}
	b, err := eng.Wait(ctx, sub.BatchID, nil)
	if err != nil || b.TotalChunks != 400 {
		t.Fatalf("batch: %v, %d chunks", err, b.TotalChunks)
	}
	// Back to the minimum after the drain and the cooldown.
	deadline := time.Now().Add(10 * time.Second)
	for current() != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	close(stopWatch)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if reachedMax.IsZero() {
		t.Fatal("the pool never reached its maximum of 6")
	}
	if lag := reachedMax.Sub(firstBacklog); lag > 2*period+50*time.Millisecond {
		t.Fatalf("the pool reached its maximum %v after the backlog appeared; want within two periods (%v)", lag, 2*period)
	}
	if current() != 1 || desired() != 1 {
		t.Fatalf("after the drain: current %v desired %v, want 1 and 1", current(), desired())
	}
}

// TestAutoscaleUnknownStage: a policy under a service's name (worker) or a
// typo is refused, not silently ignored.
func TestAutoscaleUnknownStage(t *testing.T) {
	eng, err := embedded.Open(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	eng.Autoscale = map[string]autoscale.Policy{"worker": {Min: 1, Max: 2}}
	if err := eng.Run(t.Context()); err == nil || !strings.Contains(err.Error(), `"worker" is not a stage`) {
		t.Fatalf("Run with a policy for %q: %v; want it refused", "worker", err)
	}
}
