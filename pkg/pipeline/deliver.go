package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// Delivery to partners (issue 15 §2). The merger gives a merged batch its
// feed's sinks, each pending, and sends one delivery message per sink
// beside the notify message; the deliverer delivers and records. A failed
// batch delivers nothing: a partner gets results, and a failure is the
// email's business.
//
// Every repeat of a delivery carries the same idempotency key, so the
// crash windows (after the send, before the record) end in a repeat the
// receiver drops by its key (docs/exactly-once.md).

// ReasonDeliveryFailed labels a delivery the sink refused or gave up on.
const ReasonDeliveryFailed = "delivery_failed"

// DeliveryRecorder hears each delivery's outcome (for metrics): the sink's
// type and delivered, failed or retry. A Recorder may implement it.
type DeliveryRecorder interface {
	Delivery(sinkType, outcome string)
}

// sendDeliveries records the batch's sinks (its feed's, once: a second
// merge keeps the first list) and sends one message for each that is
// still pending.
func (m Merger) sendDeliveries(ctx context.Context, b sluice.Batch) error {
	var sinks []sluice.Delivery
	if fc, err := feedConfig(m.Config, b.Feed); err == nil {
		for _, s := range fc.Deliver {
			sinks = append(sinks, sluice.Delivery{Sink: s.Name, Type: s.Type})
		}
	} else if !errors.Is(err, config.ErrUnknownFeed) {
		return err
	}
	if len(sinks) == 0 && len(b.Deliveries) == 0 {
		return nil
	}
	ds, err := m.Ledger.InitDeliveries(ctx, b.ID, sinks)
	if err != nil {
		return err
	}
	var bodies [][]byte
	for _, d := range ds {
		if d.State == sluice.DeliveryPending {
			bodies = append(bodies, sluice.Encode(sluice.DeliveryReady{Version: sluice.MessageVersion, BatchID: b.ID, Sink: d.Sink}))
		}
	}
	if len(bodies) == 0 {
		return nil
	}
	if m.Deliveries == nil {
		return fmt.Errorf("batch %s has sinks to deliver to, but this process has no deliveries queue", b.ID)
	}
	if err := m.Deliveries.SendBatch(ctx, bodies); err != nil {
		return err
	}
	return m.fault(PointMergeAfterDeliveries)
}

// feedConfig is the configuration of a batch's feed: cfg itself when it
// was narrowed to that feed already (the merge runs on its batch's feed's
// settings, which keep no feed list), else cfg.ForFeed.
func feedConfig(cfg *config.Pipeline, feed string) (*config.Pipeline, error) {
	if feed == "" {
		feed = config.DefaultFeed
	}
	if cfg.Feed == feed {
		return cfg, nil
	}
	return cfg.ForFeed(feed)
}

// Deliverer delivers one batch to one sink per message.
type Deliverer struct{ *Deps }

// Handle implements the deliver stage for one delivery message.
func (d Deliverer) Handle(ctx context.Context, msg sluice.Message) error {
	var dr sluice.DeliveryReady
	if err := sluice.Decode(msg.Body, &dr); err != nil {
		return err
	}
	return d.Deliver(ctx, dr.BatchID, dr.Sink, max(1, msg.ReceiveCount))
}

// Deliver delivers batch id to one sink, unless the ledger says it was
// delivered (or failed: only `sluice deliver retry` tries a failed sink
// again), then records the outcome. attempts is what the outcome adds to
// the sink's count: the receives of this message.
func (d Deliverer) Deliver(ctx context.Context, id, sinkName string, attempts int) error {
	b, err := d.Ledger.GetBatch(ctx, id)
	if isNotFound(err) {
		return sluice.PermanentReason(sluice.ReasonUnknownBatch, fmt.Errorf("delivery message for batch %q, which does not exist", id))
	}
	if err != nil {
		return err
	}
	log := batchLog(d.log(), id).With("sink", sinkName)
	cur, ok := b.Delivery(sinkName)
	switch {
	case !ok:
		return sluice.PermanentReason(sluice.ReasonBadState, fmt.Errorf("delivery message for sink %q, which batch %s does not have", sinkName, id))
	case cur.State != sluice.DeliveryPending:
		log.Info("delivery message for a sink already done; ignored", "state", cur.State)
		return nil
	case b.State == sluice.StateFailed:
		// Failed after the merge sent the message (its email could not
		// be sent): a failed batch delivers nothing.
		_, _, err := d.Ledger.RecordDelivery(ctx, id, sluice.Delivery{Sink: sinkName, State: sluice.DeliveryFailed,
			Reason: "the batch failed before its delivery: " + firstLine(b.Reason), Attempts: attempts, At: d.now()})
		return err
	case b.State != sluice.StateNotifying && b.State != sluice.StateCompleted:
		return sluice.PermanentReason(sluice.ReasonBadState, fmt.Errorf("delivery message for batch %q in state %s", id, b.State))
	}
	sink, err := d.sink(b.Feed, sinkName)
	if err != nil {
		return d.failed(ctx, b, cur, attempts, err.Error())
	}
	ev, err := d.event(ctx, b)
	if err != nil {
		return err
	}
	if err := d.fault(PointDeliverBeforeSend); err != nil {
		return err
	}
	err = sink.Deliver(ctx, ev)
	var refused *sluice.FailedDelivery
	switch {
	case errors.As(err, &refused):
		return d.failed(ctx, b, cur, attempts, refused.Reason)
	case err != nil:
		d.recordOutcome(cur.Type, "retry")
		return err // transient: the queue brings the message back
	}
	if err := d.fault(PointDeliverAfterSend); err != nil {
		return err
	}
	if _, _, err := d.Ledger.RecordDelivery(ctx, id, sluice.Delivery{Sink: sinkName, State: sluice.DeliveryDelivered, Attempts: attempts, At: d.now()}); err != nil {
		return err
	}
	d.recordOutcome(cur.Type, "delivered")
	log.Info("delivered", "type", cur.Type, "attempts", attempts)
	return nil
}

// failed records a sink's delivery as failed and dead-letters its message
// with the reason: a person looks at it, fixes the partner's side, and
// runs `sluice deliver retry`.
func (d Deliverer) failed(ctx context.Context, b sluice.Batch, cur sluice.Delivery, attempts int, reason string) error {
	if _, _, err := d.Ledger.RecordDelivery(ctx, b.ID, sluice.Delivery{Sink: cur.Sink, State: sluice.DeliveryFailed, Reason: reason, Attempts: attempts, At: d.now()}); err != nil {
		return err
	}
	d.recordOutcome(cur.Type, "failed")
	batchLog(d.log(), b.ID).Warn("delivery failed", "sink", cur.Sink, "type", cur.Type, "reason", reason)
	return sluice.PermanentReason(ReasonDeliveryFailed, fmt.Errorf("delivery of batch %s to %s failed: %s", b.ID, cur.Sink, reason))
}

func (d Deliverer) sink(feed, name string) (sluice.Sink, error) {
	if d.Sink == nil {
		return nil, fmt.Errorf("sink %q is not configured in this process", name)
	}
	return d.Sink(feed, name)
}

func (d Deliverer) recordOutcome(sinkType, outcome string) {
	if r, ok := d.rec().(DeliveryRecorder); ok {
		r.Delivery(sinkType, outcome)
	}
}

// event is what the sinks deliver: the batch's counts, links to its
// outputs (a file link locally, presigned on S3, valid for the feed's
// mail.linkTTL) and the output's SHA-256 from the manifest.
func (d Deliverer) event(ctx context.Context, b sluice.Batch) (sluice.DeliveryEvent, error) {
	ev := sluice.DeliveryEvent{
		Version: sluice.DeliveryEventVersion, BatchID: b.ID, Feed: b.Feed, Name: b.Name, State: string(sluice.StateCompleted),
		RowsIn: b.RowsIn, RowsOut: b.RowsOut, RowsRejected: b.RowsRejected, FinishedAt: b.MergedAt.UTC(),
		OutputKey: b.OutputKey, ErrorsKey: b.ErrorsKey,
	}
	man, err := d.manifest(ctx, b)
	if err != nil {
		return ev, err
	}
	ev.OutputSHA256 = man.Output.SHA256
	cfg := d.Config
	if fc, err := feedConfig(cfg, b.Feed); err == nil {
		cfg = fc
	}
	n := Notifier{d.Deps}
	ttl := cfg.Mail.LinkTTL.Duration
	if ev.OutputLink, _, err = n.link(ctx, b, b.OutputKey, ttl); err != nil {
		return ev, fmt.Errorf("link to the output: %w", err)
	}
	if ev.ErrorsLink, _, err = n.link(ctx, b, b.ErrorsKey, ttl); err != nil {
		return ev, fmt.Errorf("link to the error report: %w", err)
	}
	return ev, nil
}

func (d Deliverer) manifest(ctx context.Context, b sluice.Batch) (Manifest, error) {
	var man Manifest
	r, err := d.Blobs.Get(ctx, ManifestKey(b))
	if err != nil {
		return man, fmt.Errorf("reading the manifest: %w", err)
	}
	defer r.Close()
	js, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return man, fmt.Errorf("reading the manifest: %w", err)
	}
	if err := json.Unmarshal(js, &man); err != nil {
		return man, fmt.Errorf("reading the manifest: %w", err)
	}
	return man, nil
}

// deadDelivery records a delivery whose message reached the DLQ (its
// retries ran out on transient errors) as failed, with the cause; the
// batch itself stays as it is.
func (d *Deps) deadDelivery(ctx context.Context, m sluice.Message, cause error) {
	var dr sluice.DeliveryReady
	if json.Unmarshal(m.Body, &dr) != nil || dr.BatchID == "" {
		return
	}
	stored, changed, err := d.Ledger.RecordDelivery(ctx, dr.BatchID, sluice.Delivery{Sink: dr.Sink, State: sluice.DeliveryFailed,
		Reason: fmt.Sprintf("the delivery message could never be handled: %v", cause), Attempts: max(1, m.ReceiveCount), At: d.now()})
	if err != nil {
		batchLog(d.log(), dr.BatchID).Warn("recording a dead-lettered delivery", "sink", dr.Sink, "err", err)
	} else if changed {
		Deliverer{d}.recordOutcome(stored.Type, "failed")
	}
}

// RetryDeliveries puts a batch's failed sinks (only the one named, when
// sink is set) back to pending and sends a delivery message for each:
// `sluice deliver retry`. With force, delivered sinks go back too, and a
// pending sink gets a fresh message (its last one may have died); a
// repeat carries the same idempotency key, so a receiver that keeps its
// keys still drops it. It returns the sinks it queued.
func RetryDeliveries(ctx context.Context, ledger sluice.Ledger, q sluice.Queue, id, sink string, force bool) ([]string, error) {
	b, err := ledger.GetBatch(ctx, id)
	if isNotFound(err) {
		return nil, fmt.Errorf("no batch %q", id)
	}
	if err != nil {
		return nil, err
	}
	if len(b.Deliveries) == 0 {
		return nil, fmt.Errorf("batch %s has no deliveries (its feed had no deliver: sinks when it was merged, or it failed)", id)
	}
	var names, states []string
	for _, d := range b.Deliveries {
		names = append(names, d.Sink)
		states = append(states, d.Sink+" "+string(d.State))
	}
	if _, ok := b.Delivery(sink); sink != "" && !ok {
		return nil, fmt.Errorf("batch %s has no sink %q (its sinks: %s)", id, sink, strings.Join(names, ", "))
	}
	var queued []string
	for _, d := range b.Deliveries {
		if sink != "" && d.Sink != sink {
			continue
		}
		stored, changed, err := ledger.ResetDelivery(ctx, id, d.Sink, force)
		if err != nil {
			return queued, err
		}
		if !changed && !(force && stored.State == sluice.DeliveryPending) {
			continue
		}
		if err := q.Send(ctx, sluice.Encode(sluice.DeliveryReady{Version: sluice.MessageVersion, BatchID: id, Sink: d.Sink})); err != nil {
			return queued, err
		}
		queued = append(queued, d.Sink)
	}
	if len(queued) == 0 {
		return nil, fmt.Errorf("nothing to retry in batch %s: %s (only delivery_failed sinks are retried; --force delivers again)", id, strings.Join(states, ", "))
	}
	return queued, nil
}
