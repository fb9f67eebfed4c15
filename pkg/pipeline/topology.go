package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// The pipeline's topology, declared once. Every runtime reads it: the
// embedded engine (pkg/embedded), the four AWS services (pkg/service), the
// CLI, the chaos driver, provisioning (pkg/provision) and the benchmarks.
// The deploy files (Terraform, Kubernetes, dashboards, alert rules) cannot
// import Go, so pkg/deploytest's topology test compares them to this table.
//
// Each stage keeps three names, on purpose: renaming any of them would
// rename resources that already exist in deployments (SQS queues, ECS
// services and Terraform addresses, Prometheus series). What changed is
// that all three now come from this one row:
//
//	Name     the metric label and log name: split, process, merge, notify, deliver
//	Service  the service binary services/<Service> and its Terraform,
//	         ECS and Kubernetes name: splitter, worker, merger, notifier, deliverer
//	Queue    the queue it reads, after the prefix: ingest, chunks, merge, notify, deliveries

// Queue names, after the deployment's prefix (SLUICE_QUEUE_PREFIX). Each
// has a dead-letter queue named Queue + DLQSuffix.
const (
	QueueIngest = "ingest"
	QueueChunks = "chunks"
	QueueMerge  = "merge"
	QueueNotify = "notify"
	// QueueDeliveries carries one message per (batch, sink): the merge
	// sends them beside the notify message.
	QueueDeliveries = "deliveries"
	DLQSuffix       = "-dlq"
)

// MaxReceive is how often a message is received before it moves to its
// dead-letter queue, on every backend (SQLite queues, SQS redrive policy).
const MaxReceive = 5

// Handler is a stage's handler: one message in, an error if it must be
// retried. It is consumer.Handler's shape, without importing the runtime.
type Handler = func(ctx context.Context, m sluice.Message) error

// Stage is one row of the topology.
type Stage struct {
	Name    string // metric label and log name
	Service string // services/<Service>, and its deploy resources
	Queue   string // the queue it reads
	Sends   []string
	// Visibility is the input queue's default visibility timeout: longer
	// than the stage's usual work, which the heartbeat extends anyway.
	Visibility time.Duration
	// Concurrency is the default number of messages handled at once by
	// one process; 0 means one per CPU.
	Concurrency int
	// Protect: a service busy with a message asks ECS to protect its task
	// from scale-in (long chunks would be cut short).
	Protect bool
	// SamplesBatches: this service reports batches by state for the
	// dashboards and the stuck-batch alert (one service does).
	SamplesBatches bool
	New            func(*Deps) Handler
}

// Topology is the five stages in pipeline order.
var Topology = []Stage{
	{
		Name: "split", Service: "splitter", Queue: QueueIngest,
		// ingest: a huge input's scan ranges, for other split tasks
		// (scansplit.go).
		Sends:      []string{QueueChunks, QueueMerge, QueueNotify, QueueIngest},
		Visibility: 5 * time.Minute, Concurrency: 1,
		New: func(d *Deps) Handler { return Splitter{Deps: d}.Handle },
	},
	{
		Name: "process", Service: "worker", Queue: QueueChunks,
		// notify: a chunk that can never succeed fails its batch, and the
		// failure email goes out (Deps.DeadLettered).
		Sends:      []string{QueueMerge, QueueNotify},
		Visibility: 2 * time.Minute, Concurrency: 0, Protect: true,
		New: func(d *Deps) Handler { return NewWorker(d).Handle },
	},
	{
		Name: "merge", Service: "merger", Queue: QueueMerge,
		Sends:      []string{QueueNotify, QueueDeliveries},
		Visibility: 5 * time.Minute, Concurrency: 1,
		New: func(d *Deps) Handler { return Merger{Deps: d}.Handle },
	},
	{
		Name: "notify", Service: "notifier", Queue: QueueNotify,
		Visibility: time.Minute, Concurrency: 1, SamplesBatches: true,
		New: func(d *Deps) Handler { return Notifier{Deps: d}.Handle },
	},
	{
		// One message per (batch, sink), beside the email: a slow or
		// refusing partner never holds the email back.
		Name: "deliver", Service: "deliverer", Queue: QueueDeliveries,
		Visibility: 2 * time.Minute, Concurrency: 4,
		New: func(d *Deps) Handler { return Deliverer{Deps: d}.Handle },
	},
}

// StageOf finds a stage by its Name or its Service name.
func StageOf(name string) (Stage, error) {
	for _, s := range Topology {
		if s.Name == name || s.Service == name {
			return s, nil
		}
	}
	return Stage{}, fmt.Errorf("unknown stage %q (want one of %s)", name, strings.Join(Services(), ", "))
}

// Queues lists the stages' input queues in pipeline order.
func Queues() []string {
	qs := make([]string, len(Topology))
	for i, s := range Topology {
		qs[i] = s.Queue
	}
	return qs
}

// Services lists the stages' service names in pipeline order.
func Services() []string {
	ss := make([]string, len(Topology))
	for i, s := range Topology {
		ss[i] = s.Service
	}
	return ss
}

// Touches lists the queues a stage uses: the one it reads, then those it
// sends to. A least-privilege role names no others.
func (s Stage) Touches() []string { return append([]string{s.Queue}, s.Sends...) }

// SendQueues sets the Deps' outgoing queues from queues by name. Stages
// only send to the queues their row names; the others stay nil.
func (d *Deps) SendQueues(queues map[string]sluice.Queue) {
	d.Chunks, d.Merges, d.Notifies = queues[QueueChunks], queues[QueueMerge], queues[QueueNotify]
	d.Scans = queues[QueueIngest]
	d.Deliveries = queues[QueueDeliveries]
}
