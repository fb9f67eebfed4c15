package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/fault"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// runResult is what `sluice run --json` prints: one object, stable names.
type runResult struct {
	BatchID      string  `json:"batchId"`
	Status       string  `json:"status"`
	Reason       string  `json:"reason,omitempty"`
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
}

func cmdRun(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "run", "[flags] INPUT.csv", "Runs INPUT.csv through split, validate + enrich, merge and notify on this machine,\nwaits for the batch to end, and prints where the output, the error report and\nthe email are. Rerunning a file whose batch was interrupted resumes that batch.")
	cfgPath := fs.String("config", "", "pipeline configuration `file` (YAML; default: the built-in one, see `sluice config default`)")
	ref := fs.String("reference", "", "reference `CSV` to load into the catalog first (skipped when it was the last one loaded)")
	data := fs.String("data", defaultData(e), "data `directory` (bucket, queues, ledger, outbox); env SLUICE_DATA")
	asJSON := fs.Bool("json", false, "print one JSON object on stdout instead of text")
	workers := fs.Int("workers", 0, "chunks processed at once (default: the number of CPUs)")
	noProgress := fs.Bool("no-progress", false, "no progress bar, even on a terminal")
	onAWS := fs.Bool("aws", false, "upload INPUT to the S3 bucket's input/ and follow its batch; the AWS services do the work")
	timeout := fs.Duration("timeout", 30*time.Minute, "with --aws: how long to wait for the batch")
	af := addAWSFlags(fs, e)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usageErr("run takes exactly one input file")
	}
	input := pos[0]
	if st, err := os.Stat(input); err != nil {
		return fmt.Errorf("input: %w", err)
	} else if st.IsDir() {
		return fmt.Errorf("input %s is a directory", input)
	}
	if *onAWS {
		start := time.Now()
		b, err := runAWS(ctx, e, af, input, *timeout)
		if err != nil {
			return err
		}
		res := runResult{BatchID: b.ID, Status: string(b.State), Reason: b.Reason, RowsIn: b.RowsIn, RowsOut: b.RowsOut, RowsRejected: b.RowsRejected,
			Output: s3Where(b, b.OutputKey), Errors: s3Where(b, b.ErrorsKey), Email: b.EmailID, Seconds: time.Since(start).Seconds()}
		if b.State != sluice.StateSplitting {
			res.Archive = pipeline.S3URI(b.Bucket, pipeline.ArchiveKey(b))
		}
		return report(e, res, b, *asJSON)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	// The run's heap is small and short-lived (chunk buffers); collecting
	// less often trades a little memory for less CPU. GOGC still wins.
	if e.getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	eng, err := embedded.Open(*data, cfg, logger(e))
	if err != nil {
		return err
	}
	defer eng.Close()
	if *workers > 0 {
		eng.Workers = *workers
	}
	eng.Fault = fault.CrashAt(e.getenv(fault.EnvCrashAt))
	showBar := !*noProgress && isTerminal(e.stderr)
	if *ref != "" {
		if err := loadReference(ctx, e, eng, *ref, showBar); err != nil {
			return err
		}
	} else if cfg.Enriches() {
		if _, err := eng.Catalog.Columns(ctx); err != nil {
			return fmt.Errorf("%w", err)
		}
	}

	start := time.Now()
	var bar *progressbar.ProgressBar
	if showBar {
		bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(e.stderr), progressbar.OptionSetDescription("splitting"),
			progressbar.OptionShowCount(), progressbar.OptionSetItsString("chunks"), progressbar.OptionClearOnFinish(),
			progressbar.OptionSetPredictTime(false), progressbar.OptionFullWidth())
	}
	sub, b, err := eng.Process(ctx, input, func(sub embedded.Submission) {
		if sub.Resumed && !*asJSON {
			fmt.Fprintf(e.stderr, "resuming unfinished batch %s of %s\n", sub.BatchID, input)
		}
	}, func(b sluice.Batch) {
		if bar == nil {
			return
		}
		if b.TotalChunks >= 0 && bar.GetMax() != b.TotalChunks {
			bar.ChangeMax(b.TotalChunks)
		}
		bar.Describe(string(b.State))
		bar.Set(b.DoneChunks)
	})
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		if ctx.Err() != nil && sub.BatchID != "" {
			return exitError{code: 130, msg: fmt.Sprintf("interrupted; run the same command again to resume batch %s", sub.BatchID)}
		}
		return err
	}
	res := runResult{
		BatchID: b.ID, Status: string(b.State), Reason: b.Reason, RowsIn: b.RowsIn, RowsOut: b.RowsOut, RowsRejected: b.RowsRejected,
		Output: eng.Path(b.OutputKey), Errors: eng.Path(b.ErrorsKey), Email: b.EmailID, Resumed: sub.Resumed,
		Seconds: time.Since(start).Seconds(),
	}
	if p := eng.Path(pipeline.ArchiveKey(b)); fileExists(p) {
		res.Archive = p
	}
	return report(e, res, b, *asJSON)
}

// report prints a run's result and turns a failed batch into exit code 1.
func report(e env, res runResult, b sluice.Batch, asJSON bool) error {
	res.RejectRate, res.RejectsDominate = pipeline.RejectRate(b), pipeline.RejectsDominate(b)
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
		fmt.Fprintf(w, "Batch %s FAILED: %s\n", r.BatchID, r.Reason)
		if r.Archive != "" {
			fmt.Fprintf(w, "  input kept at: %s\n", r.Archive)
		}
		if r.Errors != "" {
			fmt.Fprintf(w, "  errors:  %s\n", r.Errors)
		}
		if r.Email != "" {
			fmt.Fprintf(w, "  email:   %s\n", r.Email)
		}
		return
	}
	fmt.Fprintf(w, "Batch %s %s in %.2fs\n", r.BatchID, r.Status, r.Seconds)
	if r.RejectsDominate {
		fmt.Fprintf(w, "  WARNING: most rows were rejected (%d of %d); check the error report\n", r.RowsRejected, r.RowsIn)
	}
	fmt.Fprintf(w, "  rows:    %d in, %d out, %d rejected\n", r.RowsIn, r.RowsOut, r.RowsRejected)
	for _, rc := range b.TopReasons(5) {
		fmt.Fprintf(w, "           %d × %s\n", rc.Count, rc.Rule)
	}
	fmt.Fprintf(w, "  output:  %s\n  errors:  %s\n  email:   %s\n", r.Output, r.Errors, r.Email)
}

func loadReference(ctx context.Context, e env, eng *embedded.Engine, path string, showBar bool) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("reference: %w", err)
	}
	var bar *progressbar.ProgressBar
	var progress func(int64)
	if showBar {
		bar = progressbar.DefaultBytes(st.Size(), "loading reference")
		progress = func(n int64) { bar.Set64(n) }
	}
	n, skipped, err := eng.LoadReference(ctx, path, progress)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	if !skipped {
		fmt.Fprintf(e.stderr, "loaded %d reference rows from %s\n", n, path)
	}
	return nil
}

// s3Where is key's s3:// URI, or "" for no key.
func s3Where(b sluice.Batch, key string) string {
	if key == "" {
		return ""
	}
	return pipeline.S3URI(b.Bucket, key)
}
