package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/fault"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// runResult is what `sluice run --json` prints: one object, stable names.
type runResult struct {
	BatchID      string  `json:"batchId"`
	Feed         string  `json:"feed"` // the feed the file went to
	Status       string  `json:"status"`
	Reason       string  `json:"reason"`          // empty unless the batch failed; always present
	Error        string  `json:"error,omitempty"` // why the command failed before a batch result (status "error")
	RowsIn       int     `json:"rowsIn"`
	RowsOut      int     `json:"rowsOut"`
	RowsRejected int     `json:"rowsRejected"`
	Output       string  `json:"output"`
	Errors       string  `json:"errors"`
	Email        string  `json:"email"`
	Resumed      bool    `json:"resumed"`
	Seconds      float64 `json:"seconds"`
	// RejectRate is the fraction of rows rejected; RejectsDominate flags a
	// batch that rejected more rows than it passed, limit or not.
	RejectRate      float64 `json:"rejectRate"`
	RejectsDominate bool    `json:"rejectsDominate"`
	// Archive is where the input is kept (a path, or an s3:// URI).
	Archive string `json:"archive,omitempty"`
	// Deliveries are the batch's sinks and their states (run waits until
	// none is pending); absent when the feed delivers nowhere.
	Deliveries []sluice.Delivery `json:"deliveries,omitempty"`
}

func cmdRun(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "run", "[flags] INPUT.csv", "Runs INPUT.csv through split, validate + enrich, merge and notify on this machine,\nwaits for the batch to end, and prints where the output, the error report and\nthe email are. Rerunning a file whose batch was interrupted resumes that batch.")
	cfgPath := fs.String("config", "", "pipeline configuration `file` (YAML; default: the built-in one, see `sluice config default`)")
	ref := fs.String("reference", "", "reference `CSV` to load into the feed's dataset first (skipped when it was the last one loaded)")
	feed := fs.String("feed", "", "the feed `NAME` to put INPUT in: under input/<its prefix> (default: the feed named default)")
	data := fs.String("data", defaultData(e), "data `directory` (bucket, queues, ledger, outbox); env SLUICE_DATA")
	asJSON := fs.Bool("json", false, "print one JSON object on stdout instead of text")
	workers := fs.Int("workers", 0, "chunks processed at once (default: the number of CPUs)")
	noProgress := fs.Bool("no-progress", false, "no progress bar, even on a terminal")
	onAWS := fs.Bool("aws", false, "upload INPUT to the S3 bucket's input/ and follow its batch; the AWS services do the work")
	timeout := fs.Duration("timeout", 30*time.Minute, "with --aws: how long to wait for the batch")
	af := addAWSFlags(fs, e)
	pos, err := parseArgs(fs, args, 1, "run takes exactly one input file")
	if err != nil {
		return err
	}
	input := pos[0]
	if err := embedded.CheckInput(input); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	dir, err := pipeline.InputDir(cfg, *feed)
	if err != nil {
		return err
	}
	if *onAWS {
		return runOnAWS(ctx, e, af, dir, input, *timeout, *asJSON)
	}
	return runLocal(ctx, e, cfg, localRun{data: *data, ref: *ref, feed: *feed, input: input, workers: *workers,
		asJSON: *asJSON, showBar: !*noProgress && isTerminal(e.stderr)})
}

// runOnAWS uploads input to the bucket and follows its batch.
func runOnAWS(ctx context.Context, e env, af awsFlags, dir, input string, timeout time.Duration, asJSON bool) error {
	start := time.Now()
	b, err := runAWS(ctx, e, af, dir, input, timeout)
	if err != nil {
		return err
	}
	res := runResult{BatchID: b.ID, Feed: b.Feed, Status: string(b.State), Reason: b.Reason, RowsIn: b.RowsIn, RowsOut: b.RowsOut, RowsRejected: b.RowsRejected,
		Output: s3Where(b, b.OutputKey), Errors: s3Where(b, b.ErrorsKey), Email: b.EmailID, Seconds: time.Since(start).Seconds()}
	if b.State != sluice.StateSplitting {
		res.Archive = pipeline.S3URI(b.Bucket, pipeline.ArchiveKey(b))
	}
	return report(e, res, b, asJSON)
}

// localRun is what `sluice run` does on this machine.
type localRun struct {
	data, ref, feed, input string
	workers                int
	asJSON, showBar        bool
}

// runLocal runs input through the embedded engine and waits for its batch.
func runLocal(ctx context.Context, e env, cfg *config.Pipeline, r localRun) error {
	// The run's heap is small and short-lived (chunk buffers); collecting
	// less often trades a little memory for less CPU. GOGC still wins.
	if e.getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	eng, err := embedded.Open(r.data, cfg, resultLogger(e, r.asJSON))
	if err != nil {
		return err
	}
	defer eng.Close()
	if r.workers > 0 {
		eng.Workers = r.workers
	}
	eng.Feed = r.feed
	eng.Fault = fault.CrashAt(e.getenv(fault.EnvCrashAt))
	if r.ref != "" {
		if err := loadReference(ctx, e, eng, r.ref, r.showBar); err != nil {
			return err
		}
	} else if err := checkReference(ctx, eng); err != nil {
		return err
	}

	start := time.Now()
	var bar *chunkBar
	if r.showBar {
		bar = newChunkBar(e.stderr)
	}
	sub, b, err := eng.Process(ctx, r.input, func(sub embedded.Submission) {
		if sub.Resumed && !r.asJSON {
			fmt.Fprintf(e.stderr, "resuming unfinished batch %s of %s\n", sub.BatchID, r.input)
		}
	}, bar.update)
	bar.done(b)
	if err != nil {
		if ctx.Err() != nil && sub.BatchID != "" {
			return exitError{code: 130, msg: fmt.Sprintf("interrupted; run the same command again to resume batch %s", sub.BatchID)}
		}
		return err
	}
	res := runResult{
		BatchID: b.ID, Feed: b.Feed, Status: string(b.State), Reason: b.Reason, RowsIn: b.RowsIn, RowsOut: b.RowsOut, RowsRejected: b.RowsRejected,
		Output: eng.Path(b.OutputKey), Errors: eng.Path(b.ErrorsKey), Email: b.EmailID, Resumed: sub.Resumed,
		Seconds: time.Since(start).Seconds(),
	}
	if p := eng.Path(pipeline.ArchiveKey(b)); fileExists(p) {
		res.Archive = p
	}
	return report(e, res, b, r.asJSON)
}

// checkReference refuses a run whose feed enriches from a dataset with no
// version loaded, before any batch exists. A feed enriched over HTTP has
// its one version, the API's.
func checkReference(ctx context.Context, eng *embedded.Engine) error {
	fc, err := eng.Config.ForFeed(eng.Feed)
	if err != nil || !fc.Enriches() {
		return err
	}
	cat, err := eng.FeedCatalog(fc) // its HTTP API or its dataset
	if err != nil {
		return err
	}
	if _, err := cat.Current(ctx); err != nil {
		return fmt.Errorf("reference dataset %q of feed %s: %w", fc.Dataset(), fc.Feed, err)
	}
	return nil
}

// runError is what run --json prints when it fails before a batch result:
// the result's keys, status "error", and the message.
func runError(msg string) any { return runResult{Status: "error", Error: msg} }

// report prints a run's result and turns a failed batch into exit code 1.
func report(e env, res runResult, b sluice.Batch, asJSON bool) error {
	res.RejectRate, res.RejectsDominate = pipeline.RejectRate(b), pipeline.RejectsDominate(b)
	res.Deliveries = b.Deliveries
	if asJSON {
		if err := json.NewEncoder(e.stdout).Encode(res); err != nil {
			return err
		}
	} else {
		printResult(e, res, b)
	}
	if b.State != sluice.StateCompleted {
		return exitError{code: 1}
	}
	return nil
}

func printResult(e env, r runResult, b sluice.Batch) {
	w := e.stdout
	if r.Status == string(sluice.StateFailed) {
		fmt.Fprintf(w, "Batch %s FAILED: %s\n", r.BatchID, sluice.DisplayText(r.Reason))
		if r.Feed != "" {
			fmt.Fprintf(w, "  feed:    %s\n", r.Feed)
		}
		if r.Archive != "" {
			fmt.Fprintf(w, "  input kept at: %s\n", sluice.DisplayName(r.Archive))
		}
		if r.Errors != "" {
			fmt.Fprintf(w, "  errors:  %s\n", sluice.DisplayName(r.Errors))
		}
		if r.Email != "" {
			fmt.Fprintf(w, "  email:   %s\n", r.Email)
		}
		return
	}
	fmt.Fprintf(w, "Batch %s %s in %.2fs\n", r.BatchID, r.Status, r.Seconds)
	if r.Feed != "" {
		fmt.Fprintf(w, "  feed:    %s\n", r.Feed)
	}
	if r.RejectsDominate {
		fmt.Fprintf(w, "  WARNING: most rows were rejected (%d of %d); check the error report\n", r.RowsRejected, r.RowsIn)
	}
	fmt.Fprintf(w, "  rows:    %d in, %d out, %d rejected\n", r.RowsIn, r.RowsOut, r.RowsRejected)
	for _, rc := range b.TopReasons(5) {
		fmt.Fprintf(w, "           %d × %s\n", rc.Count, rc.Rule)
	}
	// Paths are shown with invisible and bidi characters made visible.
	fmt.Fprintf(w, "  output:  %s\n  errors:  %s\n  email:   %s\n", sluice.DisplayName(r.Output), sluice.DisplayName(r.Errors), sluice.DisplayName(r.Email))
	printDeliveries(w, b)
}

// printDeliveries shows each sink's state, and why a failed one failed.
func printDeliveries(w io.Writer, b sluice.Batch) {
	for _, d := range b.Deliveries {
		fmt.Fprintf(w, "  deliver: %s (%s) %s", d.Sink, d.Type, d.State)
		if d.Reason != "" {
			fmt.Fprintf(w, ": %s", sluice.DisplayText(d.Reason))
		}
		if d.State == sluice.DeliveryFailed {
			fmt.Fprintf(w, " — once fixed: sluice deliver retry %s %s", b.ID, d.Sink)
		}
		fmt.Fprintln(w)
	}
}

// s3Where is key's s3:// URI, or "" for no key.
func s3Where(b sluice.Batch, key string) string {
	if key == "" {
		return ""
	}
	return pipeline.S3URI(b.Bucket, key)
}
