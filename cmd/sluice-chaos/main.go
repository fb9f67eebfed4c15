// Command sluice-chaos runs a generated batch through the four services as
// separate processes while it kill -9s them at random, on the local backend,
// the AWS emulators, or both, and checks that nothing was lost and nothing
// done twice (see pkg/chaos). It is what `make chaos` runs; it exits 1 when
// a check fails.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/pkg/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice-chaos:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	backend := fs.String("backend", "both", "local, aws or both")
	rows := fs.Int("rows", 1000000, "generated rows")
	awsRows := fs.Int("aws-rows", 0, "rows for the aws backend (default: -rows)")
	chunkRows := fs.Int("chunk-rows", 10000, "the pipeline's chunkRows")
	kills := fs.Int("kills", 20, "SIGKILLs per run")
	seed := fs.Int64("seed", 1, "seeds the choice of victims and the gaps between kills")
	workers := fs.Int("workers", 2, "worker processes")
	targets := fs.String("targets", "", "comma-separated stages that may be killed (default: all four)")
	minGap := fs.Duration("min-gap", 0, "shortest pause before a kill (default: 50ms local, 250ms aws)")
	maxGap := fs.Duration("max-gap", 0, "longest pause before a kill (default: 400ms local, 1.5s aws)")
	visibility := fs.Duration("visibility", 0, "SLUICE_VISIBILITY of every service (default: 5s local, 10s aws)")
	timeout := fs.Duration("timeout", 0, "how long the batch may take (default: proportional to the rows)")
	dir := fs.String("dir", "", "work directory (default: a temporary one, removed after a pass)")
	keep := fs.Bool("keep", false, "keep the work directory after a pass")
	quiet := fs.Bool("q", false, "print only the table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var backends []string
	switch *backend {
	case "both":
		backends = []string{"local", "aws"}
	case "local", "aws":
		backends = []string{*backend}
	default:
		return fmt.Errorf("-backend %q: want local, aws or both", *backend)
	}

	binDir, err := os.MkdirTemp("", "sluice-chaos-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	bins, err := build(ctx, binDir)
	if err != nil {
		return err
	}

	var out io.Writer = stdout
	if *quiet {
		out = io.Discard
	}
	var reps []chaos.Report
	failed := false
	for _, b := range backends {
		o := chaos.Options{
			Backend: b, Rows: *rows, ChunkRows: *chunkRows, Kills: *kills, Seed: *seed, Bins: bins, Workers: *workers,
			MinGap: *minGap, MaxGap: *maxGap, Visibility: *visibility, Timeout: *timeout, Keep: *keep, Out: out,
		}
		if *targets != "" {
			o.Targets = strings.Split(*targets, ",")
		}
		if b == "aws" && *awsRows > 0 {
			o.Rows = *awsRows
		}
		if *dir != "" {
			o.Dir = filepath.Join(*dir, b)
		}
		rep, err := chaos.Run(ctx, o)
		reps = append(reps, rep)
		if err != nil {
			failed = true
			fmt.Fprintf(stderr, "%s: %v\n", b, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Fprintln(stdout)
	chaos.WriteTable(stdout, reps...)
	if failed {
		return fmt.Errorf("chaos run failed")
	}
	return nil
}

// build compiles the four services into dir.
func build(ctx context.Context, dir string) (map[string]string, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	bins := map[string]string{}
	for _, s := range chaos.Stages {
		bins[s] = filepath.Join(dir, s)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bins[s], "./services/"+s)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building %s: %w\n%s", s, err, out)
		}
	}
	return bins, nil
}

// moduleRoot is the directory of the go.mod above the working directory
// (the AWS emulators' node_modules are found there too).
func moduleRoot() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run sluice-chaos inside the sluice module")
	}
	return filepath.Dir(mod), nil
}
