package sluice_test

import (
	"testing"

	"github.com/sluicehq/sluice/pkg/sluice"
)

func TestDeliverySummary(t *testing.T) {
	d := func(states ...sluice.DeliveryState) sluice.Batch {
		var b sluice.Batch
		for _, s := range states {
			b.Deliveries = append(b.Deliveries, sluice.Delivery{State: s})
		}
		return b
	}
	for want, b := range map[string]sluice.Batch{
		"":                                   d(),
		"2/2 delivered":                      d(sluice.DeliveryDelivered, sluice.DeliveryDelivered),
		"1 failed":                           d(sluice.DeliveryFailed),
		"1/3 delivered, 1 failed, 1 pending": d(sluice.DeliveryDelivered, sluice.DeliveryFailed, sluice.DeliveryPending),
		"2 pending":                          d(sluice.DeliveryPending, sluice.DeliveryPending),
	} {
		if got := b.DeliverySummary(); got != want {
			t.Errorf("%+v: %q, want %q", b.Deliveries, got, want)
		}
	}
}

// TestFailedBatchHasNoPendingDeliveries: a failed batch delivers nothing,
// so a sink it left pending must not keep run, resume or status waiting.
func TestFailedBatchHasNoPendingDeliveries(t *testing.T) {
	b := sluice.Batch{State: sluice.StateNotifying, Deliveries: []sluice.Delivery{{Sink: "hook", State: sluice.DeliveryPending}}}
	if !b.DeliveriesPending() {
		t.Fatal("a merged batch's pending sink is not pending")
	}
	b.State = sluice.StateFailed
	if b.DeliveriesPending() {
		t.Error("a failed batch still waits for its sinks")
	}
}
