// Package service is what each of the four AWS services runs: it reads the
// SLUICE_* environment, builds the AWS adapters (S3, SQS, DynamoDB, SES v2),
// serves /metrics, /healthz and /readyz on one port, and runs its stage in
// the shared consumer runtime until SIGTERM, then drains. The mains under
// services/ only call Main with their stage's name.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/consumer"
	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/ecsprotect"
	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/metrics"
	"github.com/sluicehq/sluice/pkg/outbox"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/refstore"
	"github.com/sluicehq/sluice/pkg/s3blob"
	"github.com/sluicehq/sluice/pkg/sesmail"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqlite"
	"github.com/sluicehq/sluice/pkg/sqsqueue"
)

// Queue names, after the prefix.
const (
	QueueIngest = "ingest"
	QueueChunks = "chunks"
	QueueMerge  = "merge"
	QueueNotify = "notify"
)

// Main runs a stage's service and exits with its status.
func Main(stage string) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := Run(ctx, stage, os.Getenv, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, `{"level":"ERROR","msg":"service failed","stage":%q,"err":%q}`+"\n", stage, err.Error())
		os.Exit(1)
	}
}

// Adapters are the outside world of one service.
type Adapters struct {
	Blobs    sluice.BlobStore
	Queues   map[string]sluice.Queue // by short name: ingest, chunks, merge, notify
	DLQs     map[string]sluice.Queue
	Ledger   sluice.Ledger
	Catalog  sluice.Catalog
	Mailer   sluice.Mailer
	Pipeline *config.Pipeline
}

func pipelineConfig(c Config) (*config.Pipeline, error) {
	pcfg, err := config.Load(c.PipelineConfig)
	if err != nil {
		return nil, err
	}
	if c.MailFrom != "" {
		pcfg.Mail.From = c.MailFrom
	}
	if len(c.MailTo) > 0 {
		pcfg.Mail.To = c.MailTo
	}
	pcfg.Mail.LinkTTL.Duration = c.LinkTTL
	return pcfg, nil
}

// BuildLocal builds the local adapters on a data directory shared by the
// four services as separate processes on one machine: the directory
// bucket, the SQLite queues and ledger (WAL mode, safe across processes),
// the reference file and the outbox — the layout `sluice run` uses.
func BuildLocal(c Config) (*Adapters, func() error, error) {
	pcfg, err := pipelineConfig(c)
	if err != nil {
		return nil, nil, err
	}
	blobs, err := fsblob.New(filepath.Join(c.Data, "bucket"))
	if err != nil {
		return nil, nil, err
	}
	db, err := sqlite.Open(filepath.Join(c.Data, "sluice.db"))
	if err != nil {
		return nil, nil, err
	}
	ref, err := refstore.Open(filepath.Join(c.Data, "reference.idx"))
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	mail, err := outbox.New(filepath.Join(c.Data, "outbox"))
	if err != nil {
		db.Close()
		ref.Close()
		return nil, nil, err
	}
	a := &Adapters{Blobs: blobs, Queues: map[string]sluice.Queue{}, DLQs: map[string]sluice.Queue{}, Ledger: db.Ledger(), Catalog: ref, Mailer: mail, Pipeline: pcfg}
	for _, q := range []string{QueueIngest, QueueChunks, QueueMerge, QueueNotify} {
		sq := db.Queue(q, sqlite.QueueOptions{MaxReceive: 5})
		a.Queues[q], a.DLQs[q] = sq, sq.DeadLetterQueue()
	}
	return a, func() error { ref.Close(); return db.Close() }, nil
}

// Build resolves the queues and builds every AWS adapter.
func Build(ctx context.Context, c Config, awsCfg aws.Config, log *slog.Logger) (*Adapters, error) {
	pcfg, err := pipelineConfig(c)
	if err != nil {
		return nil, err
	}
	a := &Adapters{Queues: map[string]sluice.Queue{}, DLQs: map[string]sluice.Queue{}, Pipeline: pcfg}
	client := sqs.NewFromConfig(awsCfg)
	resolve := func(name string) (string, error) {
		out, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
		if err != nil {
			return "", fmt.Errorf("queue %s: %w (run `sluice provision` first)", name, err)
		}
		return *out.QueueUrl, nil
	}
	// Only the queues this stage touches: least-privilege roles name no
	// others, not even for GetQueueUrl.
	in, sends := stageQueues(c.Stage)
	for _, q := range append([]string{in}, sends...) {
		url, err := resolve(c.QueueName(q))
		if err != nil {
			return nil, err
		}
		if q != in {
			a.Queues[q] = sqsqueue.New(awsCfg, url)
			continue
		}
		dlq, err := resolve(c.QueueName(q) + "-dlq")
		if err != nil {
			return nil, err
		}
		a.Queues[q] = sqsqueue.New(awsCfg, url, sqsqueue.WithDeadLetterURL(dlq))
		a.DLQs[q] = sqsqueue.New(awsCfg, dlq)
	}
	var s3opts []s3blob.Option
	if c.PathStyle {
		s3opts = append(s3opts, s3blob.WithPathStyle())
	}
	a.Blobs = s3blob.New(awsCfg, c.Bucket, s3opts...)
	db := dynamoledger.New(awsCfg, dynamoledger.DefaultTables(c.TablePrefix), dynamoledger.WithCacheSize(c.ReferenceCache))
	a.Ledger = db.Ledger()
	a.Catalog = db.Catalog()
	a.Mailer = sesmail.New(awsCfg, sesmail.WithFrom(pcfg.Mail.From))
	return a, nil
}

// stageQueues names the queue a stage reads and those it sends to.
func stageQueues(stage string) (in string, sends []string) {
	switch stage {
	case "splitter":
		return QueueIngest, []string{QueueChunks, QueueMerge, QueueNotify}
	case "worker":
		return QueueChunks, []string{QueueMerge}
	case "merger":
		return QueueMerge, []string{QueueNotify}
	}
	return QueueNotify, nil
}

// Deps are the stages' dependencies on these adapters.
func (a *Adapters) Deps(log *slog.Logger, rec pipeline.Recorder) *pipeline.Deps {
	d := &pipeline.Deps{
		Blobs: a.Blobs, Ledger: a.Ledger, Mailer: a.Mailer,
		Chunks: a.Queues[QueueChunks], Merges: a.Queues[QueueMerge], Notifies: a.Queues[QueueNotify],
		Config: a.Pipeline, Logger: log, Recorder: rec,
	}
	if a.Pipeline.Enriches() {
		d.Catalog = a.Catalog
	}
	return d
}

// Handler returns the stage's handler and the queue it reads.
func (a *Adapters) Handler(stage string, d *pipeline.Deps) (consumer.Handler, string, error) {
	switch stage {
	case "splitter":
		return pipeline.Splitter{Deps: d}.Handle, QueueIngest, nil
	case "worker":
		return pipeline.NewWorker(d).Handle, QueueChunks, nil
	case "merger":
		return pipeline.Merger{Deps: d}.Handle, QueueMerge, nil
	case "notifier":
		return pipeline.Notifier{Deps: d}.Handle, QueueNotify, nil
	}
	return nil, "", fmt.Errorf("unknown stage %q (want one of %s)", stage, strings.Join(Stages, ", "))
}

// stageLabel is the metric label of a service's stage.
var stageLabel = map[string]string{"splitter": "split", "worker": "process", "merger": "merge", "notifier": "notify"}

// Logger makes the JSON logger every service writes to stderr.
func Logger(level string, w io.Writer, stage string) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})).With("service", stage)
}

// Run runs one stage until ctx ends (SIGTERM), then drains and returns.
func Run(ctx context.Context, stage string, getenv func(string) string, stderr io.Writer) error {
	if _, ok := stageLabel[stage]; !ok {
		return fmt.Errorf("unknown stage %q (want one of %s)", stage, strings.Join(Stages, ", "))
	}
	c, err := LoadConfig(stage, getenv)
	if err != nil {
		return err
	}
	log := Logger(c.LogLevel, stderr, stage)
	m := metrics.New()
	awsCfg, err := awsconfig.Load(ctx, m)
	if err != nil {
		return err
	}

	var ready atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("SLUICE_HTTP_ADDR: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("starting", "http", ln.Addr().String(), "bucket", c.Bucket, "concurrency", c.Concurrency)

	var a *Adapters
	if c.Backend == "local" {
		var closeAll func() error
		if a, closeAll, err = BuildLocal(c); err != nil {
			return err
		}
		defer closeAll()
	} else if a, err = Build(ctx, c, awsCfg, log); err != nil {
		return err
	}
	d := a.Deps(log, m)
	if c.DuplicateSends {
		for _, q := range []*sluice.Queue{&d.Chunks, &d.Merges, &d.Notifies} {
			if *q != nil {
				*q = twice{*q}
			}
		}
	}
	h, qname, err := a.Handler(stage, d)
	if err != nil {
		return err
	}
	q := a.Queues[qname]
	label := stageLabel[stage]
	m.Workers.WithLabelValues(label, "current").Set(float64(c.Concurrency))
	m.Workers.WithLabelValues(label, "desired").Set(float64(c.Concurrency))
	go sampleDepth(ctx, m, q, a.DLQs[qname], 15*time.Second)
	if stage == "notifier" {
		// One service reports batches by state for the dashboards and the
		// stuck-batch alert; a scan a minute is cheap at batch counts.
		go sampleBatches(ctx, m, a.Ledger, time.Minute)
	}

	opts := consumer.Options{
		Name: label, Concurrency: c.Concurrency, Visibility: c.Visibility, Wait: c.Wait, Drain: c.Drain,
		Logger: log, Observer: m,
	}
	if stage == "worker" {
		// On ECS, a worker with a chunk in hand is protected from scale-in.
		opts.Busy = ecsprotect.New(getenv("ECS_AGENT_URI"), log).Busy
	}
	cons := consumer.New(q, h, opts)
	ready.Store(true)
	err = cons.Run(ctx)
	ready.Store(false)
	log.Info("stopped", "err", errString(err))
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// sampleBatches counts batches by state from the ledger.
func sampleBatches(ctx context.Context, m *metrics.Metrics, l sluice.Ledger, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if bs, err := l.ListBatches(ctx, sluice.BatchFilter{}); err == nil {
			counts := map[sluice.State]int{}
			for _, b := range bs {
				counts[b.State]++
			}
			m.SampleBatches(counts)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sampleDepth keeps the queue-depth gauges fresh for dashboards; the
// autoscaling itself reads SQS's own CloudWatch metrics.
func sampleDepth(ctx context.Context, m *metrics.Metrics, q, dlq sluice.Queue, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, qq := range []sluice.Queue{q, dlq} {
			if d, err := qq.Depth(ctx); err == nil {
				m.SampleQueue(qq.Name(), d)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// twice sends every message two times (SLUICE_TEST_DUPLICATE_SENDS).
type twice struct{ sluice.Queue }

func (t twice) Send(ctx context.Context, body []byte) error {
	if err := t.Queue.Send(ctx, body); err != nil {
		return err
	}
	return t.Queue.Send(ctx, body)
}

func (t twice) SendBatch(ctx context.Context, bodies [][]byte) error {
	if err := t.Queue.SendBatch(ctx, bodies); err != nil {
		return err
	}
	return t.Queue.SendBatch(ctx, bodies)
}
