// Command sluicebench is `make bench`: it generates datasets with
// `sluice gen`, times `sluice run` on each (wall time, peak RSS, stage
// times), times the same job in DuckDB (bench/duckdb/job.mjs), checks
// Sluice's output against pkg/oracle (or, for files too big for the oracle,
// against the generator's counts) and prints one table. See BENCHMARKS.md.
//
// Every timed program is a child process measured from here: wall time
// around the exec, peak RSS from the child's rusage (ru_maxrss), so no GNU
// time is needed and Sluice and DuckDB are measured the same way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluicebench:", err)
		os.Exit(1)
	}
}

type options struct {
	sizes      []int
	out        string
	bin        string
	duckDir    string
	node       string
	skipDuck   bool
	reps       int // timed runs per tool on datasets up to largeRows
	largeReps  int // timed runs per tool on larger datasets
	largeRows  int
	oracleMax  int // datasets up to this many rows are checked against the oracle
	orderedMax int // datasets up to this many rows also time DuckDB keeping the input order
	refRowsCap int // datasets above this many rows reuse this many reference keys
	seed       int64
	badRate    float64
	keep       bool
	profile    bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("sluicebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("sizes", "1000000,10000000", "comma-separated dataset `rows`")
	fs.StringVar(&o.out, "out", "bench/out", "`directory` for datasets, data directories and results")
	fs.StringVar(&o.bin, "bin", "bin/sluice", "the sluice `binary` to time")
	fs.StringVar(&o.duckDir, "duckdb-dir", "bench/duckdb", "`directory` of job.mjs and its node_modules")
	fs.StringVar(&o.node, "node", "node", "the node `binary`")
	fs.BoolVar(&o.skipDuck, "skip-duckdb", false, "time Sluice only")
	fs.IntVar(&o.reps, "reps", 3, "timed runs per tool on datasets up to -large-rows rows; the median is reported")
	fs.IntVar(&o.largeReps, "large-reps", 1, "timed runs per tool on larger datasets")
	fs.IntVar(&o.largeRows, "large-rows", 2_000_000, "datasets above this many `rows` count as large")
	fs.IntVar(&o.oracleMax, "oracle-max-rows", 2_000_000, "check datasets up to this many `rows` byte for byte against the oracle; larger ones by counts")
	fs.IntVar(&o.orderedMax, "ordered-max-rows", 100_000_000, "on datasets up to this many `rows`, also time DuckDB keeping the input order (row_number and ORDER BY), the second row; the plain join always runs; 0: never")
	fs.IntVar(&o.refRowsCap, "ref-rows", 0, "an extra, cache-friendly variant: datasets above this many rows reuse this many reference keys (gen --ref-rows); 0 (the default): full-size references, one key per order")
	fs.Int64Var(&o.seed, "seed", 1, "gen --seed")
	fs.Float64Var(&o.badRate, "bad-rate", 0.03, "gen --bad-rate")
	fs.BoolVar(&o.keep, "keep", false, "keep the last run's data directory and DuckDB output of each dataset")
	fs.BoolVar(&o.profile, "profile", false, "after the timed runs, one more Sluice run per dataset with SLUICE_CPUPROFILE, and print `go tool pprof -top`")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.sizes, err = parseSizes(*sizes); err != nil {
		return o, err
	}
	if o.reps < 1 || o.largeReps < 1 {
		return o, errors.New("-reps and -large-reps must be at least 1")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "oracle" {
		return oracleMain(args[1:])
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	if _, err := os.Stat(o.bin); err != nil {
		return fmt.Errorf("%w (build it: go build -o bin/sluice ./cmd/sluice)", err)
	}
	if o.out, err = filepath.Abs(o.out); err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	var duck *duckRunner
	if !o.skipDuck {
		if duck, err = newDuckRunner(o.node, o.duckDir); err != nil {
			return err
		}
	}

	b := &bench{o: o, duck: duck, log: newLogger(stderr)}
	b.machine = readMachine()
	b.machine.LoadStart = loadAvg()
	b.log.printf("machine: %s, load average %s", b.machine, b.machine.LoadStart)

	var failed []string
	for _, rows := range o.sizes {
		res, err := b.dataset(ctx, rows)
		if err != nil {
			return fmt.Errorf("%s rows: %w", datasetName(rows), err)
		}
		b.results = append(b.results, res)
		for _, c := range res.Checks {
			if c.Status == checkFail {
				failed = append(failed, res.Dataset+": "+c.Name)
			}
		}
	}
	b.machine.LoadEnd = loadAvg()

	rep := report{Date: time.Now().UTC().Format(time.DateOnly), Machine: b.machine, GoVersion: runtime.Version(), Results: b.results,
		DriverHWM: procField("/proc/self/status", "VmHWM", ":")}
	if duck != nil {
		rep.DuckDBVersion = duck.version
	}
	fmt.Fprint(stdout, rep.Text())
	if err := rep.WriteJSON(filepath.Join(o.out, "results.json")); err != nil {
		return err
	}
	b.log.printf("results written to %s", filepath.Join(o.out, "results.json"))
	if len(failed) > 0 {
		return fmt.Errorf("correctness check failed: %s", strings.Join(failed, "; "))
	}
	return nil
}

// logger prints progress on stderr, each line stamped with the time since
// the start: generation and every run take seconds.
type logger struct {
	w     io.Writer
	start time.Time
}

func newLogger(w io.Writer) *logger { return &logger{w: w, start: time.Now()} }

func (l *logger) printf(format string, args ...any) {
	fmt.Fprintf(l.w, "[bench %6.1fs] %s\n", time.Since(l.start).Seconds(), fmt.Sprintf(format, args...))
}
