package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// A batch's deliveries live in its JSON with the rest of it; each change
// is the same read-modify-write in one immediate transaction as every
// other update, so the condition (only a pending sink is recorded) and the
// write cannot be split by another writer.

// InitDeliveries implements sluice.Ledger.
func (l *Ledger) InitDeliveries(ctx context.Context, id string, sinks []sluice.Delivery) ([]sluice.Delivery, error) {
	b, err := l.modify(ctx, id, func(_ *sql.Tx, b *sluice.Batch) error {
		if len(b.Deliveries) > 0 {
			return nil
		}
		for _, s := range sinks {
			b.Deliveries = append(b.Deliveries, sluice.Delivery{Sink: s.Sink, Type: s.Type, State: sluice.DeliveryPending})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: init deliveries: %w", err)
	}
	return b.Deliveries, nil
}

// RecordDelivery implements sluice.Ledger.
func (l *Ledger) RecordDelivery(ctx context.Context, id string, d sluice.Delivery) (sluice.Delivery, bool, error) {
	var out sluice.Delivery
	changed := false
	_, err := l.modify(ctx, id, func(_ *sql.Tx, b *sluice.Batch) error {
		i := slices.IndexFunc(b.Deliveries, func(x sluice.Delivery) bool { return x.Sink == d.Sink })
		if i < 0 {
			return fmt.Errorf("batch %q has no sink %q: %w", id, d.Sink, sluice.ErrNotFound)
		}
		cur := &b.Deliveries[i]
		if cur.State == sluice.DeliveryPending {
			cur.State, cur.Reason, cur.At = d.State, d.Reason, d.At.UTC()
			cur.Attempts += d.Attempts
			changed = true
		}
		out = *cur
		return nil
	})
	if err != nil {
		return out, false, fmt.Errorf("ledger: record delivery: %w", err)
	}
	return out, changed, nil
}

// ResetDelivery implements sluice.Ledger.
func (l *Ledger) ResetDelivery(ctx context.Context, id, sink string, force bool) (sluice.Delivery, bool, error) {
	var out sluice.Delivery
	changed := false
	_, err := l.modify(ctx, id, func(_ *sql.Tx, b *sluice.Batch) error {
		i := slices.IndexFunc(b.Deliveries, func(x sluice.Delivery) bool { return x.Sink == sink })
		if i < 0 {
			return fmt.Errorf("batch %q has no sink %q: %w", id, sink, sluice.ErrNotFound)
		}
		cur := &b.Deliveries[i]
		if cur.State == sluice.DeliveryFailed || (force && cur.State != sluice.DeliveryPending) {
			cur.State, cur.Reason, cur.At = sluice.DeliveryPending, "", time.Time{}
			changed = true
		}
		out = *cur
		return nil
	})
	if err != nil {
		return out, false, fmt.Errorf("ledger: reset delivery: %w", err)
	}
	return out, changed, nil
}
