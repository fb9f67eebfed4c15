package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/console"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/fsblob"
)

func cmdConsole(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "console", "[flags]", "Runs the pipeline on this machine and serves the batch console: a web page and JSON API\nto upload files, follow their batches and download the outputs and error reports.\nSet SLUICE_CONSOLE_TOKEN to require a token (Authorization: Bearer, or open the page once with ?token=).")
	data := fs.String("data", defaultData(e), "data `directory` (bucket, queues, ledger, outbox); env SLUICE_DATA")
	x := addExposureFlags(fs, e)
	cfgPath := fs.String("config", "", "pipeline configuration `file` (YAML; default: the built-in one)")
	ref := fs.String("reference", "", "reference `CSV` to load into the catalog first (skipped when it was the last one loaded)")
	workers := fs.Int("workers", 0, "chunks processed at once (default: the number of CPUs)")
	maxUpload := fs.Int64("max-upload", 0, "largest upload in `bytes` (default: the configuration's limits.maxFileBytes)")
	onAWS := fs.Bool("aws", false, "serve the console over the AWS deployment (DynamoDB ledger, S3 bucket; uploads go to input/ or by presigned PUT)")
	af := addAWSFlags(fs, e)
	cfg, log, err := serverSetup(e, fs, args, x, cfgPath)
	if err != nil {
		return err
	}
	limit := *maxUpload
	if limit <= 0 {
		limit = cfg.Limits.MaxFileBytes
	}
	token := x.token
	if *onAWS {
		return consoleAWS(ctx, e, af, x, console.Options{Token: token, MaxUploadBytes: limit, AllowedHosts: x.hosts(), Feeds: cfg.FeedNames(), TraceURL: x.traceURL}, log)
	}
	eng, err := embedded.Open(*data, cfg, log)
	if err != nil {
		return err
	}
	defer eng.Close()
	if *workers > 0 {
		eng.Workers = *workers
	}
	if *ref != "" {
		if err := loadReference(ctx, e, eng, *ref, isTerminal(e.stderr)); err != nil {
			return err
		}
	} else if slices.Contains(cfg.Datasets(), config.DefaultDataset) { // feeds enriched over HTTP load nothing
		if _, err := eng.Catalog.Current(ctx); err != nil {
			fmt.Fprintf(e.stderr, "warning: %v; until then uploaded files cannot be processed (restart the console with --reference REF.csv)\n", err)
		}
	}
	h := console.New(console.Deps{
		Ledger:   eng.Ledger,
		Blobs:    eng.Blobs,
		Uploader: engineUploader(eng),
		Options:  console.Options{Token: token, MaxUploadBytes: limit, AllowedHosts: x.hosts(), Feeds: cfg.FeedNames(), TraceURL: x.traceURL},
		Logger:   log,
	})

	ln, err := x.listen(e)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: nil}
	return serveWithEngine(ctx, e, eng, srv, ln, token)
}

// serveWithEngine runs the engine and the console server together until
// ctx ends or either stops, then stops both.
func serveWithEngine(ctx context.Context, e env, eng *embedded.Engine, srv *http.Server, ln net.Listener, token string) error {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(runCtx) }()
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()

	url := "http://" + ln.Addr().String() + "/"
	fmt.Fprintf(e.stdout, "Sluice console on %s (data %s)\n", url, eng.Dir)
	if token != "" {
		fmt.Fprintf(e.stdout, "A token is required: open %s?token=… with the value of SLUICE_CONSOLE_TOKEN once.\n", url)
	}
	fmt.Fprintln(e.stdout, "Press Ctrl-C to stop.")

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-srvDone:
		srvDone <- err
		runErr = fmt.Errorf("console: %w", err)
	case err := <-engDone:
		engDone <- err
		// A signal cancels ctx and so the engine too: whichever of the two
		// this select sees first, that is a clean stop.
		if ctx.Err() == nil {
			if err == nil {
				err = errors.New("stopped")
			}
			runErr = fmt.Errorf("pipeline: %w", err)
		}
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	<-srvDone
	stop()
	if err := <-engDone; err != nil && !errors.Is(err, context.Canceled) && runErr == nil {
		runErr = fmt.Errorf("pipeline: %w", err)
	}
	return runErr
}

// consoleAWS serves the console over the AWS deployment: the batches table,
// the bucket, and uploads to input/ that the bucket notification turns
// into batches.
func consoleAWS(ctx context.Context, e env, af awsFlags, x *exposure, opts console.Options, log *slog.Logger) error {
	if err := af.need(); err != nil {
		return err
	}
	ports, err := af.ports(ctx, af.options())
	if err != nil {
		return err
	}
	// Uploads may go straight to the bucket by presigned PUT: that is S3's
	// alone, so the console asks the blob port whether it can.
	blobs := ports.Blobs
	presign, ok := blobs.(interface {
		PresignPut(ctx context.Context, key string, ttl time.Duration) (string, time.Time, error)
	})
	if !ok {
		return fmt.Errorf("console: the bucket cannot presign uploads")
	}
	h := console.New(console.Deps{
		Ledger:   ports.Ledger,
		Blobs:    blobs,
		Uploader: &console.BucketUploader{Blobs: blobs, Presign: presign.PresignPut},
		Options:  opts, Logger: log,
	})
	ln, err := x.listen(e)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Fprintf(e.stdout, "Sluice console on http://%s/ (bucket %s)\nPress Ctrl-C to stop.\n", ln.Addr(), *af.bucket)
	select {
	case <-ctx.Done():
	case err := <-done:
		return fmt.Errorf("console: %w", err)
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutCtx)
}

// engineUploader lets the console hand uploads to the engine's Submit.
func engineUploader(eng *embedded.Engine) *console.EngineUploader {
	return console.NewEngineUploader(eng.Dir, eng.Ledger, eng.Blobs, func(ctx context.Context, path, name string) (console.Upload, error) {
		sub, err := eng.SubmitAs(ctx, path, name)
		return console.Upload{BatchID: sub.BatchID, Key: sub.Key, Resumed: sub.Resumed}, err
	}, fsblob.ETagOfFile)
}
