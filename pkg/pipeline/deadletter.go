package pipeline

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// DeadLettered fails the batch of a message that went to a dead-letter
// queue, with the cause as the reason, and lets the notifier send the
// failure email: a message that can never succeed ends its batch instead of
// leaving it stalled. The consumer calls it (consumer.Options.OnDeadLetter)
// for every stage, on the embedded engine and the services alike.
//
// A batch that already ended is left alone, and so is a message that names
// no batch (a malformed body, an event for a batch never created): those
// only wait in the dead-letter queue for a person. A redriven message whose
// batch this failed is then ignored by the stages (the batch has ended);
// running or uploading the file again starts a new batch.
func (d *Deps) DeadLettered(ctx context.Context, stage string, m sluice.Message, cause error) {
	if stage == "deliver" {
		// A partner's failure never fails a batch whose output is right:
		// the sink is recorded as delivery_failed instead.
		d.deadDelivery(ctx, m, cause)
		return
	}
	id := batchOfMessage(m.Body, d.Blobs.Bucket())
	log := batchLog(d.log(), id).With("stage", stage, "message_id", m.ID)
	if id == "" {
		log.WarnContext(ctx, "dead-lettered message names no batch; nothing to fail")
		return
	}
	b, err := d.Ledger.GetBatch(ctx, id)
	if err != nil {
		log.WarnContext(ctx, "dead-lettered message: its batch cannot be read; nothing failed", "err", err)
		return
	}
	if b.State.Terminal() {
		return
	}
	reason := fmt.Sprintf("a %s message could never be handled: %v", stage, cause)
	switch {
	case stage == "notify" || b.State == sluice.StateNotifying || d.Notifies == nil:
		// The notifier is what failed: another notify message would only
		// fail the same way, so the ledger alone records why.
		_, err = d.Ledger.UpdateBatch(ctx, b.ID, sluice.BatchUpdate{State: sluice.StateFailed, Reason: reason})
	case stage == "split":
		err = d.fail(ctx, b, reason) // archives the input, as any failed split does
	default:
		// Past the split the splitter archives the input; the other
		// stages may not touch input/ (least privilege on AWS).
		if _, err = d.Ledger.UpdateBatch(ctx, b.ID, sluice.BatchUpdate{State: sluice.StateFailed, Reason: reason}); err == nil {
			err = d.Notifies.Send(ctx, sluice.Encode(sluice.BatchReady{Version: sluice.MessageVersion, BatchID: b.ID}))
		}
	}
	if err != nil {
		log.ErrorContext(ctx, "failing the batch of a dead-lettered message", "err", err)
		return
	}
	d.dropSpool(ctx, b.ID)
}

// batchOfMessage finds the batch a stage message belongs to: the batch ID
// of a chunk or batch message, or the ID an object-created event's batch
// gets in bucket. It is "" for a body that is none of them.
func batchOfMessage(body []byte, bucket string) string {
	var m struct {
		BatchID  string `json:"batchId"`
		Key      string `json:"key"`
		ETag     string `json:"etag"`
		Sequence string `json:"sequence"`
	}
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	if m.BatchID != "" {
		return m.BatchID
	}
	if m.Key == "" {
		return ""
	}
	// The splitter names a batch after its own bucket (Split).
	return sluice.BatchID(bucket, m.Key, m.ETag, m.Sequence)
}
