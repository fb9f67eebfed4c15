package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// TestDeadDeliveryFailsTheSinkNotTheBatch: a delivery message that reached
// deliveries-dlq (its retries spent on transient errors) records its sink
// delivery_failed with the cause; the batch stays completed, no failure
// email is asked for, and a second dead letter of the same sink changes
// nothing.
func TestDeadDeliveryFailsTheSinkNotTheBatch(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	b, _, err := r.d.Ledger.CreateBatch(ctx, sluice.Batch{ID: "dl1", Key: "input/x.csv", Name: "x.csv"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.d.Ledger.UpdateBatch(ctx, b.ID, sluice.BatchUpdate{State: sluice.StateCompleted}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.d.Ledger.InitDeliveries(ctx, b.ID, []sluice.Delivery{{Sink: "partner", Type: "webhook"}}); err != nil {
		t.Fatal(err)
	}
	m := sluice.Message{ID: "m1", ReceiveCount: 5, Body: sluice.Encode(sluice.DeliveryReady{Version: 1, BatchID: b.ID, Sink: "partner"})}
	r.d.DeadLettered(ctx, "deliver", m, errors.New("failed on each of 5 tries, last: HTTP 503"))
	r.d.DeadLettered(ctx, "deliver", m, errors.New("again"))
	got, err := r.d.Ledger.GetBatch(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := got.Delivery("partner")
	if got.State != sluice.StateCompleted || d.State != sluice.DeliveryFailed || !strings.Contains(d.Reason, "HTTP 503") || d.Attempts != 5 {
		t.Fatalf("batch %s, delivery %+v", got.State, d)
	}
	if n := r.notifies(t); n != 0 {
		t.Fatalf("%d notify messages: a partner's failure is not the batch's", n)
	}
}
