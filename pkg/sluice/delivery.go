package sluice

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// DeliveryState is where one sink's delivery of a batch is. A batch's state
// stays completed whatever its deliveries do: the output is right either way,
// and a partner that refused it is a separate fact.
type DeliveryState string

const (
	DeliveryPending   DeliveryState = "pending"         // a delivery message is on its way, or will be
	DeliveryDelivered DeliveryState = "delivered"       // the sink accepted it (final until `sluice deliver retry --force`)
	DeliveryFailed    DeliveryState = "delivery_failed" // refused, or retries ran out; its message is in deliveries-dlq
)

// Delivery is one sink's delivery of one batch, as the ledger keeps it.
type Delivery struct {
	Sink  string        `json:"sink"` // the sink's name in the feed's deliver: list
	Type  string        `json:"type"` // webhook, s3, sqs
	State DeliveryState `json:"state"`
	// Attempts counts the receives of delivery messages that ended in a
	// recorded outcome, summed over every retry of the sink.
	Attempts int       `json:"attempts"`
	Reason   string    `json:"reason,omitempty"` // why it failed, for a person
	At       time.Time `json:"at,omitzero"`      // when it was delivered or failed
}

// Delivery finds one sink's delivery of the batch.
func (b Batch) Delivery(sink string) (Delivery, bool) {
	for _, d := range b.Deliveries {
		if d.Sink == sink {
			return d, true
		}
	}
	return Delivery{}, false
}

// DeliveriesPending reports whether a sink of the batch still waits for
// its delivery.
func (b Batch) DeliveriesPending() bool {
	if b.State == StateFailed {
		// A failed batch delivers nothing: a sink left pending (its batch
		// failed after the sinks were recorded) will never be sent, and
		// nothing may wait for it.
		return false
	}
	for _, d := range b.Deliveries {
		if d.State == DeliveryPending {
			return true
		}
	}
	return false
}

// DeliverySummary is the batch's deliveries in a few words, for lists:
// "2/2 delivered", "1/2 delivered, 1 failed", "1 failed, 1 pending"; ""
// for a batch with no sinks.
func (b Batch) DeliverySummary() string {
	if len(b.Deliveries) == 0 {
		return ""
	}
	var delivered, failed, pending int
	for _, d := range b.Deliveries {
		switch d.State {
		case DeliveryDelivered:
			delivered++
		case DeliveryFailed:
			failed++
		default:
			pending++
		}
	}
	parts := []string{}
	if delivered > 0 || (failed == 0 && pending == 0) {
		parts = append(parts, strconv.Itoa(delivered)+"/"+strconv.Itoa(len(b.Deliveries))+" delivered")
	}
	if failed > 0 {
		parts = append(parts, strconv.Itoa(failed)+" failed")
	}
	if pending > 0 {
		parts = append(parts, strconv.Itoa(pending)+" pending")
	}
	return strings.Join(parts, ", ")
}

// DeliveryEventVersion is the version of DeliveryEvent's JSON
// (docs/delivery-event.md); a change that is not purely additive raises it.
const DeliveryEventVersion = 1

// DeliveryEvent is what a sink delivers: a batch's outcome and where its
// output is. Its JSON is the documented event; the keys stay inside.
type DeliveryEvent struct {
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

	// OutputKey and ErrorsKey are the objects in our bucket, for sinks
	// that copy them (s3); never sent.
	OutputKey string `json:"-"`
	ErrorsKey string `json:"-"`
}

// Sink delivers a finished batch to a partner: a signed webhook, a copy
// to another bucket, an event on another team's queue. Deliver must be
// safe to repeat for the same event: the deliver stage repeats it after a
// crash between delivering and recording, with the same idempotency key.
type Sink interface {
	Name() string
	Type() string
	// Deliver returns nil once the partner has it, a *FailedDelivery when
	// trying again now cannot help (a refusal, retries spent), and any
	// other error for a failure the queue should retry.
	Deliver(ctx context.Context, ev DeliveryEvent) error
}

// FailedDelivery is a delivery that will not succeed by trying again now:
// the receiver refused it (4xx) or the sink's retries ran out. Reason is
// for the delivery DLQ and the batch page.
type FailedDelivery struct {
	Sink, Reason string
}

func (f *FailedDelivery) Error() string { return "delivery to " + f.Sink + " failed: " + f.Reason }

// DeliveryReady asks the deliver stage to deliver one batch to one sink.
type DeliveryReady struct {
	Version int    `json:"v"`
	BatchID string `json:"batchId"`
	Sink    string `json:"sink"`
}
