package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// logBatches makes sluice serve say what it does: one line when a batch
// starts (the splitter recorded it, whether the file came through the drop
// folder or the console) and one when it ends, with its counts. It reads
// the ledger every period, as the console does, so it needs no hook into
// the stages. Batches that were there before serve started are not
// announced; those still running are followed to their end.
func logBatches(ctx context.Context, l sluice.Ledger, every time.Duration, log *slog.Logger) {
	const window = 100         // newest batches read each time
	open := map[string]bool{}  // started, not ended yet
	known := map[string]bool{} // in the window last time
	start := time.Now()
	first := true
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		bs, err := l.ListBatches(ctx, sluice.BatchFilter{Limit: window})
		if err != nil && ctx.Err() == nil {
			log.Warn("reading the batches to report them", "err", err)
		}
		listed := map[string]bool{}
		for _, b := range bs {
			listed[b.ID] = true
			isNew := !known[b.ID] && !first && !b.CreatedAt.Before(start)
			if isNew {
				log.Info("batch started", "batch_id", b.ID, "file", sluice.DisplayName(b.Name))
			}
			if !b.State.Terminal() {
				if first || isNew {
					open[b.ID] = true
				}
				continue
			}
			if open[b.ID] || isNew {
				batchEnded(log, b)
				delete(open, b.ID)
			}
		}
		// A batch still open but pushed out of the window by newer ones.
		for id := range open {
			if listed[id] {
				continue
			}
			if b, err := l.GetBatch(ctx, id); err == nil && b.State.Terminal() {
				batchEnded(log, b)
				delete(open, id)
			}
		}
		known, first = listed, false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func batchEnded(log *slog.Logger, b sluice.Batch) {
	args := []any{"batch_id", b.ID, "file", sluice.DisplayName(b.Name), "state", b.State,
		"rows_in", b.RowsIn, "rows_out", b.RowsOut, "rows_rejected", b.RowsRejected,
		"seconds", b.UpdatedAt.Sub(b.CreatedAt).Round(time.Millisecond).Seconds()}
	if b.State == sluice.StateFailed {
		log.Warn("batch ended", append(args, "reason", b.Reason)...)
		return
	}
	log.Info("batch ended", args...)
}

// serveLogger is the logger of serve's own events (logBatches, shutdown):
// at info unless SLUICE_LOG_LEVEL says otherwise, so that by default serve
// says when each batch starts and ends and when it stops, while the
// stages' per-step lines stay at the CLI's default level (warn).
func serveLogger(e env) *slog.Logger { return loggerDefault(e, "info") }
