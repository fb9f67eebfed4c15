package pipeline

import (
	"context"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// skipCounted acknowledges a chunk message whose chunk the ledger already
// counts done, without enriching or writing anything: re-enriching (from an
// HTTP API whose answers may have changed) and rewriting the part would
// replace the bytes that were counted, possibly while the merge hashes and
// copies them. It still reports the chunk to the counter, a repeat that
// counts nothing but finishes what a crash after the count left undone
// (the sharded DynamoDB counter's second step), and resends the merge
// message for a redelivery of a complete batch, as commit does. A ledger
// that cannot say (no sluice.ChunkChecker) keeps the old path.
func (w *Worker) skipCounted(ctx context.Context, b sluice.Batch, c sluice.ChunkReady, redelivered bool) (bool, error) {
	cc, ok := w.Ledger.(sluice.ChunkChecker)
	if !ok {
		return false, nil
	}
	counted, err := cc.ChunkCounted(ctx, b.ID, c.Chunk)
	if err != nil || !counted {
		return false, err
	}
	batchLog(w.log(), b.ID).InfoContext(ctx, "chunk already counted done; acknowledged without rewriting its part", "chunk", c.Chunk, "redelivered", redelivered)
	comp, err := w.Ledger.ChunkDone(ctx, b.ID, sluice.ChunkStats{Chunk: c.Chunk, Reasons: map[string]int{}})
	if err != nil {
		return true, err
	}
	if comp.Completed || (comp.Complete && redelivered) {
		return true, w.Merges.Send(ctx, sluice.Encode(sluice.BatchReady{Version: sluice.MessageVersion, BatchID: b.ID}))
	}
	return true, nil
}
