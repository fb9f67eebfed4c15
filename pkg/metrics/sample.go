package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Sample copies queue depths and batch counts into the gauges every
// period until ctx ends: the dashboards and the stuck-batch alert read
// them. Written once for the embedded engine and the services; a nil
// ledger samples only the queues. A ledger that cannot answer is logged
// to log: on ECS a missing permission once left the gauges silently empty.
func (m *Metrics) Sample(ctx context.Context, every time.Duration, queues []sluice.Queue, ledger sluice.Ledger, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := m.SampleOnce(ctx, queues, ledger); err != nil && ctx.Err() == nil {
			log.Warn("sampling batches by state", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SampleOnce records the queues' depths and, with a ledger, the batches
// by state now, from the ledger's per-state counts (kept as batches change
// state: no scan of its history). A queue or ledger that cannot answer
// keeps its last value; the ledger's error is returned.
func (m *Metrics) SampleOnce(ctx context.Context, queues []sluice.Queue, ledger sluice.Ledger) error {
	for _, q := range queues {
		if q == nil {
			continue
		}
		if d, err := q.Depth(ctx); err == nil {
			m.SampleQueue(q.Name(), d)
		}
	}
	if ledger == nil {
		return nil
	}
	counts, err := ledger.CountByState(ctx)
	if err != nil {
		return err
	}
	m.SampleBatches(counts)
	return nil
}
