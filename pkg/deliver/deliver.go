// Package deliver holds the delivery sinks (issue 15, section 2), the
// adapters of the sluice.Sink port: a signed webhook, a copy of the output
// to another bucket, a completion event on another team's SQS queue. Each
// delivery carries an idempotency key derived from (batch, sink) alone, so
// a delivery repeated after a crash between sending and recording carries
// the same key and the receiver can drop the repeat.
//
// The pipeline's deliver stage (pkg/pipeline/deliver.go) calls them; the
// builders in pkg/wire make them from the configuration's deliver: lists.
package deliver

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// EventVersion is the version of the Event JSON; a receiver checks it and
// a change that is not purely additive raises it.
const EventVersion = sluice.DeliveryEventVersion

// Event is what a sink delivers (docs/delivery-event.md).
type Event = sluice.DeliveryEvent

// Failed is a delivery that will not succeed by trying again now.
type Failed = sluice.FailedDelivery

// IdempotencyKey names one delivery of one batch to one sink. It depends on
// nothing else (no time, no attempt number), so every repeat of the
// delivery, after a retry or a crash, carries the same key.
func IdempotencyKey(batchID, sink string) string {
	h := sha256.Sum256([]byte(batchID + "\x00" + sink))
	return hex.EncodeToString(h[:16])
}
