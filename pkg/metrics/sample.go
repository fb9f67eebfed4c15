package metrics

import (
	"context"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Sample copies queue depths and batch counts into the gauges every
// period until ctx ends: the dashboards and the stuck-batch alert read
// them. Written once for the embedded engine and the services; a nil
// ledger samples only the queues.
func (m *Metrics) Sample(ctx context.Context, every time.Duration, queues []sluice.Queue, ledger sluice.Ledger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		m.SampleOnce(ctx, queues, ledger)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SampleOnce records the queues' depths and, with a ledger, the batches
// by state now. A queue or ledger that cannot answer keeps its last value.
func (m *Metrics) SampleOnce(ctx context.Context, queues []sluice.Queue, ledger sluice.Ledger) {
	for _, q := range queues {
		if q == nil {
			continue
		}
		if d, err := q.Depth(ctx); err == nil {
			m.SampleQueue(q.Name(), d)
		}
	}
	if ledger == nil {
		return
	}
	if bs, err := ledger.ListBatches(ctx, sluice.BatchFilter{}); err == nil {
		counts := map[sluice.State]int{}
		for _, b := range bs {
			counts[b.State]++
		}
		m.SampleBatches(counts)
	}
}
