// Package deliver sends a finished batch's result to a partner (issue 15,
// section 2). This first part holds the webhook sink: a signed JSON POST,
// retried with backoff, carrying an idempotency key derived from (batch,
// sink) alone, so a delivery repeated after a crash between sending and
// recording carries the same key and the receiver can drop the repeat.
//
// Not yet wired into the pipeline: the deliver step after the merge, the
// per-sink state on the batch, the s3 and sqs sinks, the delivery DLQ, the
// console and `sluice deliver retry` are still to be built.
package deliver

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// EventVersion is the version of the Event JSON; a receiver checks it and
// a change that is not purely additive raises it.
const EventVersion = 1

// Event is what a sink delivers: a batch's outcome and where its output is.
type Event struct {
	Version      int       `json:"version"`
	BatchID      string    `json:"batchId"`
	Feed         string    `json:"feed,omitempty"`
	Name         string    `json:"name"`
	State        string    `json:"state"`
	RowsIn       int       `json:"rowsIn"`
	RowsOut      int       `json:"rowsOut"`
	RowsRejected int       `json:"rowsRejected"`
	OutputLink   string    `json:"outputLink,omitempty"`   // presigned or file link
	OutputSHA256 string    `json:"outputSha256,omitempty"` // of the output file's bytes
	ErrorsLink   string    `json:"errorsLink,omitempty"`
	FinishedAt   time.Time `json:"finishedAt"`
}

// IdempotencyKey names one delivery of one batch to one sink. It depends on
// nothing else (no time, no attempt number), so every repeat of the
// delivery, after a retry or a crash, carries the same key.
func IdempotencyKey(batchID, sink string) string {
	h := sha256.Sum256([]byte(batchID + "\x00" + sink))
	return hex.EncodeToString(h[:16])
}
