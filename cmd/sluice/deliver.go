package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

const deliverHelp = `Puts a batch's delivery_failed sinks (or only SINK) back to pending and queues a
delivery for each. Fix the partner's side first: a refused delivery is refused again.
--force also delivers sinks again that were delivered, with the same idempotency key
(a receiver that keeps its keys drops the repeat).

Locally the deliveries are made now, when no other sluice process holds the data
directory (otherwise the running serve makes them); with --aws the deliverer service does.`

func cmdDeliver(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] != "retry" {
		return usageErr("usage: sluice deliver retry BATCH [SINK] [--force] [--data DIR | --aws ...]")
	}
	fs := newFlags(e, "deliver retry", "BATCH [SINK] [flags]", deliverHelp)
	data := fs.String("data", defaultData(e), "data `directory` of the local pipeline; env SLUICE_DATA")
	cfgPath := fs.String("config", "", "pipeline configuration `file` (YAML): the sinks, when delivering locally")
	onAWS := fs.Bool("aws", false, "the AWS deployment (batches table, deliveries queue) instead of the local one")
	force := fs.Bool("force", false, "also deliver sinks again that were delivered")
	af := addAWSFlags(fs, e)
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		fs.Usage()
		return usageErr("name a batch, and optionally one of its sinks")
	}
	id, sink := pos[0], ""
	if len(pos) == 2 {
		sink = pos[1]
	}
	if *onAWS {
		o := af.options()
		o.Sends = []string{pipeline.QueueDeliveries}
		ports, err := af.ports(ctx, o)
		if err != nil {
			return err
		}
		defer ports.Close()
		queued, err := pipeline.RetryDeliveries(ctx, ports.Ledger, ports.Queues[pipeline.QueueDeliveries], id, sink, *force)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "queued %s for batch %s; the deliverer service delivers them (sluice status --aws %s)\n", strings.Join(queued, ", "), id, id)
		return nil
	}
	return retryLocal(ctx, e, *data, *cfgPath, id, sink, *force)
}

// retryLocal queues the deliveries, then delivers them in this process
// when it can take the data directory; a running `sluice serve` holds it
// and delivers them itself.
func retryLocal(ctx context.Context, e env, data, cfgPath, id, sink string, force bool) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	db, err := openLocalDB(data, false)
	if err != nil {
		return err
	}
	if err := sinksConfigured(ctx, db.Ledger(), cfg, id, sink); err != nil {
		db.Close()
		return err
	}
	queued, err := pipeline.RetryDeliveries(ctx, db.Ledger(), db.Queue(pipeline.QueueDeliveries, sqlite.QueueOptions{MaxReceive: pipeline.MaxReceive}), id, sink, force)
	db.Close()
	if err != nil {
		return err
	}
	eng, err := embedded.Open(data, cfg, logger(e))
	if errors.Is(err, embedded.ErrLocked) {
		fmt.Fprintf(e.stdout, "queued %s for batch %s; the sluice process running on %s delivers them\n", strings.Join(queued, ", "), id, data)
		return nil
	}
	if err != nil {
		return fmt.Errorf("queued %s, but cannot deliver now: %w", strings.Join(queued, ", "), err)
	}
	defer eng.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- eng.Run(runCtx) }()
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	b, err := eng.Wait(waitCtx, id, nil)
	cancel()
	stop()
	<-done
	if err != nil {
		return err
	}
	failed := 0
	for _, d := range b.Deliveries {
		fmt.Fprintf(e.stdout, "%s\t%s\t%s\n", d.Sink, d.State, sluice.DisplayText(d.Reason))
		if d.State == sluice.DeliveryFailed {
			failed++
		}
	}
	if failed > 0 {
		return exitError{code: 1, msg: fmt.Sprintf("%d sink(s) of batch %s failed again", failed, id)}
	}
	return nil
}

// sinksConfigured refuses a local retry whose configuration lacks the
// batch's sinks (a forgotten --config): the delivery would only fail again
// as "not configured".
func sinksConfigured(ctx context.Context, l sluice.Ledger, cfg *config.Pipeline, id, sink string) error {
	b, err := l.GetBatch(ctx, id)
	if err != nil {
		return nil // RetryDeliveries says what is wrong with the batch
	}
	fc, err := cfg.ForFeed(b.Feed)
	if err != nil {
		return fmt.Errorf("batch %s: %w; pass the --config it ran with", id, err)
	}
	for _, d := range b.Deliveries {
		if sink != "" && d.Sink != sink {
			continue
		}
		if !slices.ContainsFunc(fc.Deliver, func(s config.Sink) bool { return s.Name == d.Sink }) {
			return fmt.Errorf("the configuration has no sink %q for feed %s (batch %s); pass the --config it ran with", d.Sink, fc.Feed, id)
		}
	}
	return nil
}
