package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/autoscale"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/console"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/metrics"
	"github.com/sluicehq/sluice/pkg/sluice"
)

func cmdServe(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "serve", "[flags]", "Runs the pipeline on this machine until stopped: every .csv file dropped into DIR/input/\nbecomes a batch (the file moves into the bucket). Each stage's pool is sized from its\nqueue's depth by the same policy the AWS services scale with. Serves the batch console\nat /, Prometheus metrics at /metrics, and /healthz and /readyz.")
	data := fs.String("data", defaultData(e), "data `directory`; files dropped into DIR/input/ are processed; env SLUICE_DATA")
	x := addExposureFlags(fs, e)
	cfgPath := fs.String("config", "", "pipeline configuration `file` (YAML; default: the built-in one)")
	ref := fs.String("reference", "", "reference `CSV` to load into the catalog first")
	minW := fs.Int("min-workers", 1, "smallest chunk-worker pool")
	maxW := fs.Int("max-workers", 2*runtime.NumCPU(), "largest chunk-worker pool")
	latency := fs.Duration("target-latency", 10*time.Second, "how long a chunk may wait for a worker; sets the backlog each worker may have")
	period := fs.Duration("scale-period", 2*time.Second, "how often the pools are resized")
	cooldown := fs.Duration("scale-in-cooldown", 30*time.Second, "wait after a change before shrinking a pool")
	poll := fs.Duration("poll", time.Second, "how often DIR/input/ is looked at")
	cfg, log, err := serverSetup(e, fs, args, x, cfgPath)
	if err != nil {
		return err
	}
	events := serveLogger(e) // batches starting and ending, shutdown
	eng, err := embedded.Open(*data, cfg, log)
	if err != nil {
		return err
	}
	defer eng.Close()
	m := metrics.New()
	eng.Metrics = m
	eng.AutoscalePeriod = *period
	eng.Autoscale = servePolicies(*minW, *maxW, *latency, *cooldown)
	if *ref != "" {
		if err := loadReference(ctx, e, eng, *ref, isTerminal(e.stderr)); err != nil {
			return err
		}
	}
	drop := filepath.Join(eng.Dir, "input")
	if err := makeDropFolders(drop, cfg); err != nil {
		return err
	}
	token := x.token
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ready") })
	mux.Handle("/", console.New(console.Deps{
		Ledger: eng.Ledger, Blobs: eng.Blobs, Uploader: engineUploader(eng),
		Options: console.Options{Token: token, MaxUploadBytes: cfg.Limits.MaxFileBytes, AllowedHosts: x.hosts(), Feeds: cfg.FeedNames(), TraceURL: x.traceURL}, Logger: log,
	}))
	ln, err := x.listen(e)
	if err != nil {
		return err
	}
	// The Host check covers /metrics and the health checks too.
	srv := &http.Server{Handler: console.NewHostGuard(x.hosts()...).Wrap(mux), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Fprintf(e.stdout, "sluice serve: drop .csv files into %s\n  console  http://%s/\n  metrics  http://%s/metrics\n", drop, ln.Addr(), ln.Addr())

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- eng.Run(runCtx) }()
	go logBatches(runCtx, eng.Ledger, *poll, events)
	watchDrop(runCtx, eng, drop, *poll, log)
	events.Info("shutting down: finishing the work in hand", "data", eng.Dir)
	stop()
	err = <-done
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	events.Info("stopped")
	return nil
}

// servePolicies size each stage's pool by its stage name (pipeline.Topology;
// the engine refuses a name no stage has): the chunk workers between the
// flags' bounds, merges up to two at once, split and notify one.
func servePolicies(minW, maxW int, latency, cooldown time.Duration) map[string]autoscale.Policy {
	one := autoscale.Policy{Min: 1, Max: 1}
	return map[string]autoscale.Policy{
		"split":   one,
		"process": {Min: minW, Max: maxW, TargetLatency: latency, ScaleInCooldown: cooldown},
		"merge":   {Min: 1, Max: 2, TargetLatency: latency, ScaleInCooldown: cooldown},
		"notify":  one,
	}
}

// watchDrop submits every .csv file under dir, in subfolders too, once its
// size and time have not changed for one poll (so a file still being
// copied is left alone), then removes it from dir: it lives on in the
// bucket. dir mirrors the bucket's input/: DIR/input/orders/x.csv becomes
// input/orders/x.csv and goes to the feed whose prefix claims it. A file
// that cannot be submitted stays and is tried again.
func watchDrop(ctx context.Context, eng *embedded.Engine, dir string, every time.Duration, log *slog.Logger) {
	last := map[string]dropSeen{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		now := map[string]dropSeen{}
		for rel, cur := range dropFiles(dir, log) {
			now[rel] = cur
			if prev, ok := last[rel]; !ok || prev != cur {
				continue // new or still changing: look again next time
			}
			path := filepath.Join(dir, filepath.FromSlash(rel))
			sub, err := eng.SubmitUnder(ctx, path, rel)
			if err != nil {
				log.Error("submitting a dropped file; will retry", "file", sluice.DisplayName(rel), "err", err)
				continue
			}
			if err := os.Remove(path); err != nil {
				log.Error("removing a submitted file from the drop folder", "file", rel, "err", err)
			}
			delete(now, rel)
			// logBatches says "batch started" once the splitter has it.
			log.Info("file submitted", "file", sluice.DisplayName(rel), "batch_id", sub.BatchID, "resumed", sub.Resumed)
		}
		last = now
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// makeDropFolders makes the drop folder and, inside it, a folder for each
// feed whose prefix is one, to show people where each feed's files go.
func makeDropFolders(drop string, cfg *config.Pipeline) error {
	if err := os.MkdirAll(drop, 0o755); err != nil {
		return err
	}
	for _, f := range cfg.FeedList() {
		if d, _, ok := strings.Cut(f.Prefix, "/"); ok && d != "" && !strings.HasPrefix(d, ".") {
			if err := os.MkdirAll(filepath.Join(drop, d), 0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

type dropSeen struct {
	size int64
	mod  time.Time
}

// dropFiles lists the input files under dir (isInputName) by
// slash-separated relative path, skipping hidden files and folders
// (partial copies, .sluice-tmp).
func dropFiles(dir string, log *slog.Logger) map[string]dropSeen {
	out := map[string]dropSeen{}
	err := filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err != nil {
			return nil // a folder removed while walking: next poll
		}
		name := de.Name()
		if p != dir && strings.HasPrefix(name, ".") {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !de.Type().IsRegular() || !isInputName(name) {
			return nil
		}
		info, err := de.Info()
		if err != nil {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err == nil {
			out[filepath.ToSlash(rel)] = dropSeen{info.Size(), info.ModTime()}
		}
		return nil
	})
	if err != nil {
		log.Error("reading the drop folder", "dir", dir, "err", err)
	}
	return out
}

// isInputName: the names serve takes from its drop folder. CSV as always,
// and the inputs pkg/format reads (gzip, zstd, workbooks): the content is
// recognised by its first bytes, but only these names are picked up, so a
// note or a half-written editor file beside them is not made a batch.
func isInputName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv", ".gz", ".zst", ".xlsx":
		return true
	}
	return false
}
