// Package metrics holds every Prometheus metric Sluice exports, in one
// registry per process, with Prometheus naming (seconds, _total on
// counters) and bounded labels: stages, queues, rules, reasons and states,
// never batch IDs or file names. It implements consumer.Observer and
// pipeline.Recorder, so neither of those packages imports Prometheus.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/pkg/consumer"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// Metrics is one process's metrics.
type Metrics struct {
	Registry *prometheus.Registry

	received       *prometheus.CounterVec
	handled        *prometheus.CounterVec
	deadLettered   *prometheus.CounterVec
	handlerSeconds *prometheus.HistogramVec
	rows           *prometheus.CounterVec
	rejected       *prometheus.CounterVec
	bytes          *prometheus.CounterVec
	batchSeconds   *prometheus.HistogramVec
	batchesEnded   *prometheus.CounterVec
	deliveries     *prometheus.CounterVec
	// Sampled: set by whoever can see them (the embedded engine, a service).
	Batches       *prometheus.GaugeVec // by state
	QueueMessages *prometheus.GaugeVec // by queue, kind = visible | in_flight | delayed
	Workers       *prometheus.GaugeVec // by stage, kind = current | desired
	AWSCalls      *prometheus.CounterVec
	AWSItemCount  *prometheus.CounterVec

	// feeds bounds the feed label: the configured feed names (Feeds); any
	// other value is recorded as NoFeed. Empty: not bounded yet.
	feeds map[string]bool
}

// NoFeed is the feed label of what belongs to no configured feed: an
// object no feed's prefix claims.
const NoFeed = "none"

var (
	_ consumer.Observer         = (*Metrics)(nil)
	_ pipeline.FeedRecorder     = (*Metrics)(nil)
	_ pipeline.DeliveryRecorder = (*Metrics)(nil)
)

// SinkTypes and DeliveryOutcomes bound the deliveries counter's labels.
var (
	SinkTypes        = []string{"webhook", "s3", "sqs"}
	DeliveryOutcomes = []string{"delivered", "failed", "retry"}
)

// New registers every metric, and the Go and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m := &Metrics{Registry: r}
	m.received = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_messages_received_total", Help: "Messages received from a stage's queue."}, []string{"stage"})
	m.handled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_messages_handled_total", Help: "Messages handled, by outcome: succeeded, retried, dead_lettered."}, []string{"stage", "outcome"})
	m.deadLettered = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_messages_dead_lettered_total", Help: "Messages sent to a dead-letter queue at once, by reason."}, []string{"stage", "reason"})
	m.handlerSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_handler_duration_seconds", Help: "Time to handle one message.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14)}, []string{"stage"})
	m.rows = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_rows_total", Help: "Rows by stage, result (in, out, rejected) and feed."}, []string{"stage", "result", "feed"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_rows_rejected_total", Help: "Rejected rows by rule and feed."}, []string{"rule", "feed"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_bytes_total", Help: "Bytes read and written, by stage, direction and feed."}, []string{"stage", "direction", "feed"})
	m.batchSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_batch_duration_seconds", Help: "From the file's arrival to the email, by feed.",
		Buckets: prometheus.ExponentialBuckets(0.1, 2, 14)}, []string{"feed"})
	m.batchesEnded = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_batches_ended_total", Help: "Batches that ended, by final state and feed."}, []string{"state", "feed"})
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_deliveries_total",
		Help: "Deliveries to partners' sinks, by sink type and outcome: delivered, failed (refused or retries spent), retry (a transient error; the message comes back)."}, []string{"type", "outcome"})
	m.Batches = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_batches", Help: "Batches by state (sampled from the ledger)."}, []string{"state"})
	m.QueueMessages = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_queue_messages", Help: "Messages in a queue (sampled), kind = visible, in_flight, delayed."}, []string{"queue", "kind"})
	m.Workers = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_workers", Help: "Handlers per stage, kind = current or desired."}, []string{"stage", "kind"})
	m.AWSCalls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_aws_calls_total", Help: "AWS API call attempts, by service and operation."}, []string{"service", "operation"})
	m.AWSItemCount = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_aws_items_total", Help: "Items DynamoDB calls touch (keys read, items written), by service and operation."}, []string{"service", "operation"})
	for _, c := range []prometheus.Collector{m.received, m.handled, m.deadLettered, m.handlerSeconds, m.rows, m.rejected, m.bytes,
		m.batchSeconds, m.batchesEnded, m.deliveries, m.Batches, m.QueueMessages, m.Workers, m.AWSCalls, m.AWSItemCount} {
		f(c)
	}
	// Series that exist from the start at 0, so rate() and increase() see
	// the first event instead of a series appearing from nothing.
	for _, stage := range pipeline.Topology {
		st := stage.Name
		m.received.WithLabelValues(st)
		for _, o := range []consumer.Outcome{consumer.Succeeded, consumer.Retried, consumer.DeadLettered} {
			m.handled.WithLabelValues(st, string(o))
		}
	}
	for _, t := range SinkTypes {
		for _, o := range DeliveryOutcomes {
			m.deliveries.WithLabelValues(t, o)
		}
	}
	return m
}

// Delivery implements pipeline.DeliveryRecorder. The type is one of
// SinkTypes (the configuration allows no other); "" (a type unknown to a
// dead-letter hook) is left out.
func (m *Metrics) Delivery(sinkType, outcome string) {
	if sinkType == "" {
		return
	}
	m.deliveries.WithLabelValues(sinkType, outcome).Inc()
}

// Feeds bounds the feed label to the configured feeds' names (and NoFeed)
// and starts their series at 0, so rate() and increase() see the first
// event instead of a series appearing from nothing.
func (m *Metrics) Feeds(names ...string) {
	m.feeds = map[string]bool{NoFeed: true}
	for _, f := range append(names, NoFeed) {
		m.feeds[f] = true
		for _, r := range []string{"in", "out", "rejected"} {
			m.rows.WithLabelValues("process", r, f)
		}
		m.rows.WithLabelValues("split", "in", f)
		for _, s := range []sluice.State{sluice.StateCompleted, sluice.StateFailed} {
			m.batchesEnded.WithLabelValues(string(s), f)
		}
		// The dashboards' rates need a sample before the first batch: the
		// series exist at 0 from the start, as the unlabelled ones did.
		m.bytes.WithLabelValues("split", "read", f)
		m.bytes.WithLabelValues("process", "written", f)
		m.bytes.WithLabelValues("merge", "written", f)
		m.batchSeconds.WithLabelValues(f)
	}
}

// ForFeed implements pipeline.FeedRecorder: what the view hears is
// labelled with the feed (NoFeed for a name the configuration lacks).
func (m *Metrics) ForFeed(feed string) pipeline.Recorder {
	if feed == "" || (m.feeds != nil && !m.feeds[feed]) {
		feed = NoFeed
	}
	return feedView{m: m, feed: feed}
}

// feedView is the Recorder of one feed's batches.
type feedView struct {
	m    *Metrics
	feed string
}

func (v feedView) Rows(stage, result string, n int) {
	v.m.rows.WithLabelValues(stage, result, v.feed).Add(float64(n))
}

func (v feedView) Rejected(rule string, n int) {
	v.m.rejected.WithLabelValues(rule, v.feed).Add(float64(n))
}

func (v feedView) Bytes(stage, direction string, n int64) {
	v.m.bytes.WithLabelValues(stage, direction, v.feed).Add(float64(n))
}

func (v feedView) BatchEnded(state sluice.State, d time.Duration) {
	v.m.batchesEnded.WithLabelValues(string(state), v.feed).Inc()
	v.m.batchSeconds.WithLabelValues(v.feed).Observe(d.Seconds())
}

// Handler serves the registry for /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Received implements consumer.Observer.
func (m *Metrics) Received(stage string, n int) { m.received.WithLabelValues(stage).Add(float64(n)) }

// Handled implements consumer.Observer.
func (m *Metrics) Handled(stage string, o consumer.Outcome, reason string, d time.Duration) {
	m.handled.WithLabelValues(stage, string(o)).Inc()
	m.handlerSeconds.WithLabelValues(stage).Observe(d.Seconds())
	if o == consumer.DeadLettered {
		m.deadLettered.WithLabelValues(stage, reason).Inc()
	}
}

// Rows implements pipeline.Recorder for what no feed's view records: the
// stages narrow to the batch's feed (ForFeed) first.
func (m *Metrics) Rows(stage, result string, n int) { m.ForFeed(NoFeed).Rows(stage, result, n) }

// Rejected implements pipeline.Recorder (see Rows).
func (m *Metrics) Rejected(rule string, n int) { m.ForFeed(NoFeed).Rejected(rule, n) }

// Bytes implements pipeline.Recorder (see Rows).
func (m *Metrics) Bytes(stage, direction string, n int64) {
	m.ForFeed(NoFeed).Bytes(stage, direction, n)
}

// BatchEnded implements pipeline.Recorder (see Rows).
func (m *Metrics) BatchEnded(state sluice.State, d time.Duration) {
	m.ForFeed(NoFeed).BatchEnded(state, d)
}

// SampleQueue records a queue's depth.
func (m *Metrics) SampleQueue(queue string, d sluice.QueueDepth) {
	m.QueueMessages.WithLabelValues(queue, "visible").Set(float64(d.Visible))
	m.QueueMessages.WithLabelValues(queue, "in_flight").Set(float64(d.InFlight))
	m.QueueMessages.WithLabelValues(queue, "delayed").Set(float64(d.Delayed))
}

// SampleBatches records how many batches are in each state.
func (m *Metrics) SampleBatches(counts map[sluice.State]int) {
	for _, s := range []sluice.State{sluice.StateSplitting, sluice.StateProcessing, sluice.StateMerging, sluice.StateNotifying, sluice.StateCompleted, sluice.StateFailed} {
		m.Batches.WithLabelValues(string(s)).Set(float64(counts[s]))
	}
}

// AWSCall implements awsconfig.CallCounter.
func (m *Metrics) AWSCall(service, operation string) {
	m.AWSCalls.WithLabelValues(service, operation).Inc()
}

// AWSItems implements awsconfig.ItemCounter.
func (m *Metrics) AWSItems(service, operation string, n int) {
	m.AWSItemCount.WithLabelValues(service, operation).Add(float64(n))
}
