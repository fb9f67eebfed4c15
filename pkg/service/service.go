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
	"github.com/sluicehq/sluice/pkg/tracing"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/consumer"
	"github.com/sluicehq/sluice/pkg/ecsprotect"
	"github.com/sluicehq/sluice/pkg/fault"
	"github.com/sluicehq/sluice/pkg/httpref"
	"github.com/sluicehq/sluice/pkg/metrics"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/wire"
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

func pipelineConfig(c Config) (*config.Pipeline, error) {
	pcfg, err := config.LoadFor(c.PipelineConfig, c.Backend)
	if err != nil {
		return nil, err
	}
	pcfg.OverrideMail(c.MailFrom, c.MailTo, c.LinkTTL)
	return pcfg, nil
}

// Build builds the service's ports: wire.Local on SLUICE_DATA, or the AWS
// adapters with only the queues this stage touches.
func Build(ctx context.Context, c Config, pcfg *config.Pipeline, awsCfg aws.Config) (*wire.Ports, error) {
	if c.Backend == "local" {
		return wire.Local(c.Data)
	}
	st, err := pipeline.StageOf(c.Stage)
	if err != nil {
		return nil, err
	}
	o := c.AWSOptions().Stage(st)
	if r := pcfg.Retention.Records; !r.Forever {
		o.RecordTTL = r.D
	}
	return wire.AWS(ctx, awsCfg, o)
}

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
	st, err := pipeline.StageOf(stage)
	if err != nil {
		return err
	}
	c, err := LoadConfig(st.Service, getenv)
	if err != nil {
		return err
	}
	log := Logger(c.LogLevel, stderr, st.Service)
	stopTracing, err := tracing.Setup(ctx, st.Service, getenv)
	if err != nil {
		return err
	}
	defer stopTracing(context.WithoutCancel(ctx))
	m := metrics.New()
	counters := []awsconfig.CallCounter{m}
	if c.ObserveCalls != "" {
		obs, err := fault.Observe(c.ObserveCalls, stage)
		if err != nil {
			return fmt.Errorf("SLUICE_TEST_OBSERVE_CALLS: %w", err)
		}
		counters = append(counters, obs)
	}
	awsCfg, err := awsconfig.LoadLogged(ctx, log, counters...)
	if err != nil {
		return err
	}
	var ready atomic.Bool
	stopHTTP, err := serveHTTP(ctx, c.HTTPAddr, m, &ready, log)
	if err != nil {
		return err
	}
	defer stopHTTP()
	log.Info("starting", "bucket", c.Bucket, "concurrency", c.Concurrency)

	pcfg, err := pipelineConfig(c)
	if err != nil {
		return err
	}
	ports, err := Build(ctx, c, pcfg, awsCfg)
	if err != nil {
		return err
	}
	defer ports.Close()
	m.Feeds(pcfg.FeedNames()...)
	if err := ports.UseHTTPReference(pcfg, httpref.Options{Getenv: getenv, Credentials: awsCfg.Credentials}); err != nil {
		return err
	}
	if st.Queue == pipeline.QueueDeliveries {
		// Only the deliverer holds the sinks and their secrets.
		if err := ports.UseSinks(ctx, pcfg, wire.SinkOptions{Getenv: getenv, PathStyle: c.PathStyle, AWS: &awsCfg}); err != nil {
			return err
		}
	}
	d := ports.Deps(pcfg, log, m)
	d.Fault = fault.CrashAt(c.CrashAt)
	if fl, ok := d.Ledger.(interface {
		WithFault(func(string) error) sluice.Ledger
	}); ok && d.Fault != nil {
		// The sharded DynamoDB counter has a fault point of its own
		// (fault.PointLedgerAfterShard), between its two writes.
		d.Ledger = fl.WithFault(d.Fault)
	}
	if c.DuplicateSends {
		fault.DuplicateSends(d)
	}
	cons := stageConsumer(ctx, st, c, ports, st.New(d), d.DeadLettered, m, getenv, log)
	ready.Store(true)
	err = cons.Run(ctx)
	ready.Store(false)
	log.Info("stopped", "err", errString(err))
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// serveHTTP serves /metrics, /healthz and /readyz until the returned stop
// is called.
func serveHTTP(ctx context.Context, addr string, m *metrics.Metrics, ready *atomic.Bool, log *slog.Logger) (stop func(), err error) {
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
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("SLUICE_HTTP_ADDR: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	log.Info("serving", "http", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}, nil
}

// stageConsumer builds the stage's consumer on its input queue and starts
// sampling for the dashboards.
func stageConsumer(ctx context.Context, st pipeline.Stage, c Config, ports *wire.Ports, h consumer.Handler, deadLettered func(context.Context, string, sluice.Message, error), m *metrics.Metrics, getenv func(string) string, log *slog.Logger) *consumer.Consumer {
	q, dlq := ports.StageQueues(st)
	m.Workers.WithLabelValues(st.Name, "current").Set(float64(c.Concurrency))
	m.Workers.WithLabelValues(st.Name, "desired").Set(float64(c.Concurrency))
	// The queue-depth gauges are for dashboards; the autoscaling itself
	// reads SQS's own CloudWatch metrics.
	go m.Sample(ctx, 15*time.Second, []sluice.Queue{q, dlq}, nil, log)
	if st.SamplesBatches {
		// One service reports batches by state for the dashboards and the
		// stuck-batch alert, from the ledger's per-state counts.
		go m.Sample(ctx, time.Minute, nil, ports.Ledger, log)
	}
	opts := consumer.Options{
		Name: st.Name, Concurrency: c.Concurrency, Visibility: c.Visibility, Wait: c.Wait, Drain: c.Drain,
		Logger: log, Observer: m,
		// A message that can never succeed fails its batch (and the
		// failure email goes out) instead of waiting in the DLQ.
		MaxReceive: c.MaxReceive, OnDeadLetter: deadLettered,
	}
	if st.Protect {
		// On ECS, a worker with a chunk in hand is protected from scale-in.
		opts.Busy = ecsprotect.New(getenv("ECS_AGENT_URI"), log).Busy
	}
	return consumer.New(q, h, opts)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
