// Package wire builds the ports every runtime runs the pipeline on, in one
// of two ways: Local (a data directory: a directory bucket, SQLite queues
// and ledger, the reference file, an .eml outbox) or AWS (S3, SQS,
// DynamoDB, SES v2). `sluice run`, `serve` and `console`, the four
// services, the chaos driver and the benchmarks all build their ports here
// and their stage dependencies with Ports.Deps, so the queue names, the
// dead-letter queues and MaxReceive come from pipeline.Topology alone.
package wire

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/tracing"
)

// Ports are the outside world of one runtime, as domain interfaces.
type Ports struct {
	Blobs sluice.BlobStore
	// Queues and DLQs are keyed by queue name (pipeline.QueueIngest, ...);
	// a builder asked for fewer queues leaves the others out.
	Queues map[string]sluice.Queue
	DLQs   map[string]sluice.Queue
	Ledger sluice.Ledger
	// Catalog holds the reference versions; its Load publishes a new one
	// (pkg/reference drives it).
	Catalog sluice.Catalog
	// Dataset opens the catalog of a named reference dataset ("default"
	// is Catalog); each dataset's versions are apart from every other's.
	Dataset func(name string) (sluice.Catalog, error)
	Mailer  sluice.Mailer

	httpRefs  map[string]sluice.Catalog         // by feed: UseHTTPReference
	sinks     map[string]map[string]sluice.Sink // feed → name → sink (UseSinks)
	sinkAWS   *aws.Config                       // the sinks' SDK configuration, loaded when one needs it
	local     bool                              // built by Local: the bucket is a directory
	pathStyle bool
	closers   []func() error
}

// Close releases what the builder opened (files, databases); the AWS
// clients hold nothing to release.
func (p *Ports) Close() error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		errs = append(errs, p.closers[i]())
	}
	p.closers = nil
	return errors.Join(errs...)
}

// Deps are the stages' dependencies on these ports. The catalog is left
// out when the configuration enriches nothing, so a missing reference is
// no error then.
func (p *Ports) Deps(cfg *config.Pipeline, log *slog.Logger, rec pipeline.Recorder) *pipeline.Deps {
	if log != nil {
		// Stage handlers log with their message's context: the lines
		// carry its trace_id and span_id.
		log = tracing.Logger(log)
	}
	d := &pipeline.Deps{Blobs: p.Blobs, Ledger: p.Ledger, Mailer: p.Mailer, Config: cfg, Logger: log, Recorder: rec}
	d.SendQueues(p.Queues)
	if cfg.Enriches() {
		d.Catalog = p.Catalog
	}
	d.Datasets = p.Catalogs
	d.HTTPCatalog = p.HTTPCatalog
	if p.sinks != nil {
		d.Sink = p.Sink
	}
	return d
}

// Catalogs is the catalog of a dataset: Catalog for "default" (or ""),
// Dataset for the others.
func (p *Ports) Catalogs(name string) (sluice.Catalog, error) {
	if name == "" || name == config.DefaultDataset || p.Dataset == nil {
		if p.Dataset == nil && name != "" && name != config.DefaultDataset {
			return nil, fmt.Errorf("reference dataset %q: this runtime has only the default dataset", name)
		}
		return p.Catalog, nil
	}
	if err := config.ValidName("reference dataset", name); err != nil {
		return nil, err
	}
	return p.Dataset(name)
}

// datasets opens each named dataset's catalog once and keeps it.
type datasets struct {
	mu   sync.Mutex
	open func(name string) (sluice.Catalog, error)
	m    map[string]sluice.Catalog
}

func (d *datasets) get(name string) (sluice.Catalog, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.m[name]; ok {
		return c, nil
	}
	c, err := d.open(name)
	if err != nil {
		return nil, err
	}
	if d.m == nil {
		d.m = map[string]sluice.Catalog{}
	}
	d.m[name] = c
	return c, nil
}

// StageQueues are the queue a stage reads and its dead-letter queue.
func (p *Ports) StageQueues(s pipeline.Stage) (in, dlq sluice.Queue) {
	return p.Queues[s.Queue], p.DLQs[s.Queue]
}
