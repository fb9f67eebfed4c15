// Package embedded runs the whole pipeline in one process on one machine:
// the four stages over the local adapters (a directory bucket, SQLite
// queues, ledger and catalog, an .eml outbox). It is what `sluice run` and
// `sluice serve` use, and what a new user meets first.
//
// A data directory holds everything:
//
//	DIR/bucket/        the bucket (input/, input_archive/, <batch>/...)
//	DIR/sluice.db      queues and ledger
//	DIR/reference/     the reference versions (memory-mapped hash files, see refstore)
//	DIR/outbox/        one .eml per batch
package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/pkg/autoscale"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/consumer"
	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/metrics"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/reference"
	"github.com/sluicehq/sluice/pkg/refstore"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/spool"
	"github.com/sluicehq/sluice/pkg/wire"
)

// Engine is an embedded pipeline on one data directory. Its ports (the
// embedded wire.Ports: Blobs, Queues, DLQs, Ledger, Catalog,
// Mailer) are the domain interfaces; which adapters stand behind them is
// wire.Local's business.
type Engine struct {
	Dir    string
	Config *config.Pipeline
	Logger *slog.Logger
	// Workers is how many chunks are processed at once; default: the CPUs.
	// With the spool the process stage runs one handler more (runStage).
	Workers int
	// Fault is passed to the stages (tests inject crashes with it).
	Fault func(point string) error
	// Metrics, when set, receives every measurement, and Run samples the
	// queues and the ledger into it.
	Metrics *metrics.Metrics
	// Autoscale, when it has a policy for a stage (split, process, merge,
	// notify), sizes that stage's pool from its queue's depth every
	// AutoscalePeriod instead of keeping it fixed.
	Autoscale       map[string]autoscale.Policy
	AutoscalePeriod time.Duration
	// Feed names the feed Submit and Process put files in: under
	// input/<the feed's prefix>. Empty: the default feed.
	Feed string

	// Spool writes plain CSV outputs in place as chunks finish (pkg/spool);
	// Open sets it, nil turns it off (every chunk then stores parts).
	Spool *spool.Spool

	*wire.Ports

	lock *dirLock
	// swept is closed when Open's sweep of the bucket has ended;
	// sweptBytes is what it freed and sweepErr how it ended; stopSweep
	// ends it early (Close).
	swept      chan struct{}
	sweptBytes int64
	sweepErr   error
	stopSweep  context.CancelFunc
}

// Open opens (creating if needed) the data directory. Only one engine may
// run on a directory at a time; a second Open fails with ErrLocked.
func Open(dir string, cfg *config.Pipeline, logger *slog.Logger) (*Engine, error) {
	if cfg == nil {
		cfg = config.Default()
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, err
	}
	e := &Engine{Dir: abs, Config: cfg, Logger: logger, Workers: runtime.NumCPU()}
	if e.lock, err = lockDir(abs); err != nil {
		return nil, err
	}
	if sw, err := e.sweepTemp(context.Background(), "outbox"); err != nil || len(sw.Paths) > 0 {
		logger.Info("removed temporary files of writes that died", "count", len(sw.Paths), "bytes", sw.Bytes, "err", err)
	}
	if e.Ports, err = wire.Local(abs); err != nil {
		unlockDir(e.lock)
		return nil, err
	}
	e.Spool = newSpool(e.Ports)
	if err := e.useHTTPReference(); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.Ports.UseSinks(context.Background(), cfg, wire.SinkOptions{Getenv: os.Getenv, PathStyle: os.Getenv("SLUICE_S3_PATH_STYLE") == "true"}); err != nil {
		e.Close()
		return nil, err
	}
	// The single table and its stamp from before versions raced (issue 10,
	// finding 2); DIR/reference/ replaces them. A killed load's temporary
	// files are swept here, where the lock says no load runs beside us.
	os.Remove(filepath.Join(abs, "reference.idx"))
	os.Remove(filepath.Join(abs, "reference.loaded"))
	if n, err := refstore.SweepTemp(filepath.Join(abs, wire.ReferenceDir)); err != nil || n > 0 {
		logger.Info("removed the temporary files of an interrupted reference load", "files", n, "error", err)
	}
	e.sweepInBackground()
	return e, nil
}

// Close releases the directory.
func (e *Engine) Close() error {
	var errs []error
	if e.swept != nil {
		e.stopSweep() // what it did not reach, the next Open sweeps
		<-e.swept     // no sweep may outlive the lock: the next process's writes are not dead
	}
	if e.Spool != nil {
		errs = append(errs, e.Spool.Close()) // its open files, before the database its state is in
	}
	if e.Ports != nil {
		errs = append(errs, e.Ports.Close())
	}
	if e.lock != nil {
		errs = append(errs, unlockDir(e.lock))
	}
	return errors.Join(errs...)
}

// StageQueues lists the stage queues in pipeline order.
func (e *Engine) StageQueues() []sluice.Queue {
	var qs []sluice.Queue
	for _, s := range pipeline.Topology {
		qs = append(qs, e.Queues[s.Queue])
	}
	return qs
}

// Deps are the stages' dependencies on this engine's ports.
func (e *Engine) Deps() *pipeline.Deps {
	var rec pipeline.Recorder
	if e.Metrics != nil {
		e.Metrics.Feeds(e.Config.FeedNames()...)
		rec = e.Metrics
	}
	d := e.Ports.Deps(e.Config, e.Logger, rec)
	d.Fault = e.Fault
	if e.Spool != nil {
		d.Spool = e.Spool
	}
	return d
}

// newSpool is the spool of a data directory's bucket, its state in the
// ledger's database; nil when the ports are not those (no spool then).
func newSpool(p *wire.Ports) *spool.Spool {
	blobs, ok := p.Blobs.(*fsblob.Store)
	states, ok2 := p.Ledger.(spool.States)
	if !ok || !ok2 {
		return nil
	}
	return spool.New(blobs, states)
}

// releaser is what the engine needs of its local queues beyond the port:
// handing back what a dead process left in flight.
type releaser interface {
	ReleaseInFlight(ctx context.Context) (int, error)
}

// Run runs the four stages until ctx ends. Messages left in flight by a
// process that died are released first: this process is the only consumer
// of its directory.
func (e *Engine) Run(ctx context.Context) error {
	for name := range e.Autoscale {
		// A policy under a name no stage has would silently not apply.
		if !slices.ContainsFunc(pipeline.Topology, func(s pipeline.Stage) bool { return s.Name == name }) {
			return fmt.Errorf("autoscale: %q is not a stage (want one of split, process, merge, notify, deliver)", name)
		}
	}
	if _, err := e.waitSweep(ctx); err != nil {
		return err
	}
	for _, q := range e.StageQueues() {
		r, ok := q.(releaser)
		if !ok {
			continue
		}
		if n, err := r.ReleaseInFlight(ctx); err != nil {
			return err
		} else if n > 0 {
			e.Logger.Info("released messages left in flight by an earlier run", "queue", q.Name(), "count", n)
		}
	}
	d := e.Deps()
	g, ctx := errgroup.WithContext(ctx)
	for _, s := range pipeline.Topology {
		e.runStage(ctx, g, s, d)
	}
	if e.Metrics != nil {
		g.Go(func() error { e.Metrics.Sample(ctx, 2*time.Second, e.sampled(), e.Ledger, e.Logger); return nil })
	}
	err := g.Wait()
	if noSpace(err) {
		return e.diskFull(err) // the stages stopped: say where and what to do
	}
	return err
}

// Handlers is how many messages stage s handles at once: its own
// concurrency, else Workers, and one more while the spool is on.
func (e *Engine) Handlers(s pipeline.Stage) int {
	if s.Concurrency > 0 {
		return s.Concurrency
	}
	n := max(1, e.Workers)
	if e.Spool != nil {
		// A chunk may wait in the spool for the one before it (about a
		// quarter of a handler's time at 1M rows, BENCHMARKS.md); one
		// more handler keeps the cores busy.
		n++
	}
	return n
}

// runStage starts one stage's consumer, and its autoscaler when it has a
// policy: Handlers of them at once (one for every stage but process).
func (e *Engine) runStage(ctx context.Context, g *errgroup.Group, s pipeline.Stage, d *pipeline.Deps) {
	n := e.Handlers(s)
	q := e.Queues[s.Queue]
	// The stage's own visibility, as on AWS: a heartbeat extends it while
	// a message is handled, and Run releases what a dead process held.
	o := consumer.Options{Name: s.Name, Concurrency: n, Visibility: s.Visibility, Wait: 5 * time.Second, Logger: e.Logger, Drain: 10 * time.Second,
		// A dead message fails its batch; a full disk stops the run.
		MaxReceive: pipeline.MaxReceive, OnDeadLetter: d.DeadLettered, Fatal: noSpace}
	if e.Metrics != nil {
		o.Observer = e.Metrics
		e.Metrics.Workers.WithLabelValues(s.Name, "current").Set(float64(n))
		e.Metrics.Workers.WithLabelValues(s.Name, "desired").Set(float64(n))
	}
	c := consumer.New(q, s.New(d), o)
	g.Go(func() error { return c.Run(ctx) })
	p, ok := e.Autoscale[s.Name]
	if !ok {
		return
	}
	c.SetConcurrency(p.Min)
	ctl := &autoscale.Controller{Policy: p, Period: e.AutoscalePeriod, Queue: q, Pool: c}
	if e.Metrics != nil {
		ctl.Report = func(cur, want int) {
			e.Metrics.Workers.WithLabelValues(s.Name, "current").Set(float64(cur))
			e.Metrics.Workers.WithLabelValues(s.Name, "desired").Set(float64(want))
		}
	}
	g.Go(func() error { ctl.Run(ctx); return nil })
}

// Submission is the outcome of Submit.
type Submission struct {
	BatchID string
	Key     string
	Resumed bool // an unfinished batch of the same file was found
}

// ErrBusy is returned by Submit for a different file under the name of one
// whose batch is unfinished and still reads it from input/: replacing it
// would hand that batch the new file's rows.
var ErrBusy = errors.New("a different file with this name is still being processed")

// Submit puts a local file under input/ and tells the splitter, unless an
// unfinished batch of the same file (same name and content) exists: then
// that batch is resumed instead. A file whose last batch ended is a new
// upload and starts a new batch.
func (e *Engine) Submit(ctx context.Context, path string) (Submission, error) {
	return e.SubmitAs(ctx, path, filepath.Base(path))
}

// SubmitAs is Submit for a file named name (a base name), wherever it is
// kept: the console receives uploads under a temporary name. The content is
// identified by its SHA-256, so only the same bytes resume a batch. A name
// too long for one key element goes under a bounded form of it
// (pipeline.SafeName); the batch keeps the name itself.
func (e *Engine) SubmitAs(ctx context.Context, path, name string) (Submission, error) {
	dir, err := pipeline.InputDir(e.Config, e.Feed)
	if err != nil {
		return Submission{}, err
	}
	return e.submit(ctx, path, dir, name)
}

// SubmitUnder is Submit to the key input/<rel> (a slash-separated path):
// the splitter routes it to the feed whose prefix claims it, or fails its
// batch when none does. `sluice serve` submits its drop folder's files so.
func (e *Engine) SubmitUnder(ctx context.Context, path, rel string) (Submission, error) {
	dir := pipeline.InputPrefix
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, rel = dir+rel[:i+1], rel[i+1:]
	}
	return e.submit(ctx, path, dir, rel)
}

// submit puts the file at dir+name (dir: input/ and a prefix). When an
// unfinished batch of the key exists, the file is hashed before anything
// is copied: a rerun to resume a batch (or a different file refused as
// busy) writes nothing and needs no free space for a second copy.
func (e *Engine) submit(ctx context.Context, path, dir, name string) (Submission, error) {
	if err := CheckInput(path); err != nil {
		return Submission{}, err
	}
	key := dir + pipeline.SafeName(name)
	if err := sluice.ValidateKey(dir + name); err != nil {
		return Submission{}, fmt.Errorf("the file name cannot be used as an object key: %w", err)
	}
	prev, err := e.Ledger.ListBatches(ctx, sluice.BatchFilter{Key: key, FieldsOnly: true})
	if err != nil {
		return Submission{}, err
	}
	if slices.ContainsFunc(prev, func(b sluice.Batch) bool { return !b.State.Terminal() || b.DeliveriesPending() }) {
		etag, _, err := fsblob.ETagOfFile(path)
		if err != nil {
			return Submission{}, err
		}
		if sub, _, err := e.match(ctx, prev, key, etag); sub != nil || err != nil {
			return deref(sub), err
		}
	}
	up, err := e.upload(ctx, key, path)
	if noSpace(err) {
		// The start-up sweep may not yet have freed what dead writes held
		// (a killed run's copy of this very file).
		if freed, _ := e.waitSweep(ctx); freed {
			up, err = e.upload(ctx, key, path)
		}
	}
	if err != nil {
		return Submission{}, err
	}
	defer up.discard()
	etag, size := up.etag, up.size
	sub, gen, err := e.match(ctx, prev, key, etag)
	if sub != nil || err != nil {
		return deref(sub), err
	}
	seq := strconv.Itoa(gen + 1)
	if err := up.publish(ctx); err != nil {
		return Submission{}, err
	}
	ev := sluice.ObjectCreated{
		Version: sluice.MessageVersion, Bucket: e.Blobs.Bucket(), Key: key, Size: size, ETag: etag,
		Sequence: seq, EventTime: time.Now().UTC().Format(time.RFC3339Nano),
	}
	if key != dir+name {
		ev.Name = name
	}
	if err := e.Queues[pipeline.QueueIngest].Send(ctx, sluice.Encode(ev)); err != nil {
		return Submission{}, err
	}
	return Submission{BatchID: sluice.BatchID(e.Blobs.Bucket(), key, etag, seq), Key: key}, nil
}

// match weighs a file of this etag against the earlier batches of its key:
// the unfinished batch of the same content to resume, or ErrBusy for an
// unfinished batch of other content that still reads the key; else how
// many batches of this content ended (the new batch's generation).
func (e *Engine) match(ctx context.Context, prev []sluice.Batch, key, etag string) (*Submission, int, error) {
	gen := 0
	for _, b := range prev {
		if b.ETag != etag {
			if !b.State.Terminal() && e.readsInput(ctx, b) {
				return nil, 0, fmt.Errorf("%w: batch %s (%s) has not ended and still reads %s; run the earlier file again to finish it, or submit this one under another name", ErrBusy, b.ID, b.State, key)
			}
			continue
		}
		if !b.State.Terminal() || b.DeliveriesPending() {
			// Unfinished, or finished with deliveries still to make: a
			// rerun after a crash finishes those rather than start anew.
			return &Submission{BatchID: b.ID, Key: key, Resumed: true}, 0, nil
		}
		gen++
	}
	return nil, gen, nil
}

func deref(s *Submission) Submission {
	if s == nil {
		return Submission{}
	}
	return *s
}

// upload is a submitted file on its way under input/: its ETag is known
// before the earlier batches of its key are checked, and publish makes it
// the object only when a new batch will read it.
type upload struct {
	etag    string
	size    int64
	staged  *fsblob.Staged                  // the local store's copy, not yet published
	publish func(ctx context.Context) error // stores it under its key
}

func (u *upload) discard() {
	if u.staged != nil {
		u.staged.Discard()
	}
}

// upload copies the file into the local store under a temporary name
// (the kernel copies it; the ETag is the copy's hash, so the file is read
// by this process once, not three times). A store that cannot stage
// files gets the file hashed first, then Put, then compared.
func (e *Engine) upload(ctx context.Context, key, path string) (*upload, error) {
	if st, ok := e.Blobs.(interface {
		StageFile(ctx context.Context, key, path string) (*fsblob.Staged, error)
	}); ok {
		staged, err := st.StageFile(ctx, key, path)
		if errors.Is(err, fsblob.ErrChanged) {
			// The store's reason says which: changed, or open for writing.
			return nil, fmt.Errorf("%s changed while it was being read (%v)", path, err)
		}
		if err != nil {
			return nil, err
		}
		u := &upload{etag: staged.ETag, size: staged.Size, staged: staged}
		u.publish = func(ctx context.Context) error { _, err := staged.Publish(ctx); return err }
		return u, nil
	}
	etag, size, err := fsblob.ETagOfFile(path)
	if err != nil {
		return nil, err
	}
	u := &upload{etag: etag, size: size}
	u.publish = func(ctx context.Context) error { return e.put(ctx, key, path, etag, size) }
	return u, nil
}

// put stores the file under key and checks that what was stored is what
// was hashed before.
func (e *Engine) put(ctx context.Context, key, path, etag string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := e.Blobs.Put(ctx, key, f)
	if err != nil {
		return err
	}
	if info.ETag != etag || info.Size != size {
		// No batch will read this copy: leave no orphan under input/.
		if derr := e.Blobs.Delete(ctx, key); derr != nil {
			e.Logger.Warn("removing the copy of a file that changed", "key", key, "err", derr)
		}
		return fmt.Errorf("%s changed while it was being read", path)
	}
	return nil
}

// readsInput reports whether batch b's input is still its object under
// input/ (the split has not archived it yet).
func (e *Engine) readsInput(ctx context.Context, b sluice.Batch) bool {
	info, err := e.Blobs.Stat(ctx, b.Key)
	return err == nil && info.ETag == b.ETag
}

// Process submits one file, runs the pipeline, waits for the file's batch
// to end and stops the pipeline again: `sluice run` in one call. submitted,
// when set, hears the submission before the wait; progress is Wait's.
//
// Submit comes first, before any stage runs: a rerun after a crash must
// find its unfinished batch before a redelivered message can finish it,
// or Submit would start a second batch of the same file (two emails).
func (e *Engine) Process(ctx context.Context, path string, submitted func(Submission), progress func(sluice.Batch)) (Submission, sluice.Batch, error) {
	sub, err := e.Submit(ctx, path)
	if err != nil {
		return sub, sluice.Batch{}, e.orDiskFull(err, sub.BatchID, path)
	}
	if submitted != nil {
		submitted(sub)
	}
	runCtx, stop := context.WithCancel(ctx)
	// The wait ends when the pipeline does (a full disk stops it), not
	// only when ctx does.
	waitCtx, stopWait := context.WithCancel(ctx)
	defer stopWait()
	done := make(chan error, 1)
	go func() { err := e.Run(runCtx); stopWait(); done <- err }()
	b, err := e.Wait(waitCtx, sub.BatchID, progress)
	stop()
	if rerr := <-done; rerr != nil && !errors.Is(rerr, context.Canceled) && (err == nil || ctx.Err() == nil) {
		err = rerr
	}
	err = e.orDiskFull(err, sub.BatchID, path)
	return sub, b, err
}

// ErrStalled means a batch cannot go on by itself: its queues are empty
// but a message went to a dead-letter queue (it failed on every try, or its
// process died each time). The error says which and why; once the cause is
// fixed, `sluice dlq redrive QUEUE` lets the batch go on.
var ErrStalled = errors.New("the batch stalled")

// Wait polls the ledger until the batch ends, calling progress on every
// change it sees. It returns ErrStalled when nothing is left to do but the
// batch has not ended.
func (e *Engine) Wait(ctx context.Context, id string, progress func(sluice.Batch)) (sluice.Batch, error) {
	t := time.NewTimer(time.Hour) // reset before each sleep
	defer t.Stop()
	var last sluice.Batch
	idleSince := time.Time{}
	nextLook := time.Now() // at the queues, for a stall
	for {
		b, err := e.Ledger.GetBatch(ctx, id)
		if err != nil && !errors.Is(err, sluice.ErrNotFound) {
			return b, err
		}
		if err == nil {
			if progress != nil && (b.UpdatedAt != last.UpdatedAt || b.State != last.State) {
				progress(b)
			}
			last = b
			// A batch ends with its email; `run` also waits for its
			// deliveries, so a partner is not left to the next run.
			if b.State.Terminal() && (b.EmailID != "" || b.State == sluice.StateFailed && e.dead(ctx, b)) && !b.DeliveriesPending() {
				return b, nil
			}
		}
		if !time.Now().Before(nextLook) { // every half second: is anything left to do?
			nextLook = time.Now().Add(500 * time.Millisecond)
			if stalled, why := e.stalled(ctx); !stalled {
				idleSince = time.Time{}
			} else if idleSince.IsZero() {
				idleSince = time.Now()
			} else if time.Since(idleSince) > 2*time.Second {
				return last, fmt.Errorf("%w: no work is left in the queues, and %s", ErrStalled, why)
			}
		}
		t.Reset(waitEvery(last))
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-t.C:
		}
	}
}

// waitEvery is how long Wait sleeps between looks at batch b: 10 ms once
// its chunks are all done, since `sluice run` exits when Wait sees the end
// (every 50 ms saw it 25 ms late on average, in an exit phase of 30-60 ms
// at 1M rows); 50 ms before, when a look (a SELECT and a JSON decode of
// the batch) only moves the progress bar.
func waitEvery(b sluice.Batch) time.Duration {
	switch {
	case b.State == sluice.StateMerging || b.State == sluice.StateNotifying || b.State.Terminal():
		return 10 * time.Millisecond
	case b.TotalChunks >= 0 && b.DoneChunks >= b.TotalChunks && b.State == sluice.StateProcessing:
		return 10 * time.Millisecond
	}
	return 50 * time.Millisecond
}

// stalled reports whether every stage queue is empty while a dead-letter
// queue holds messages, and describes them.
func (e *Engine) stalled(ctx context.Context) (bool, string) {
	var dead []string
	for _, s := range pipeline.Topology {
		d, err := e.Queues[s.Queue].Depth(ctx)
		if err != nil || d.Visible+d.InFlight+d.Delayed > 0 {
			return false, ""
		}
		msgs, err := e.Queues[s.Queue].PeekDead(ctx, 3)
		if err != nil {
			return false, ""
		}
		for _, m := range msgs {
			dead = append(dead, fmt.Sprintf("%s%s holds a message (%s); once the cause is fixed run `sluice dlq redrive %s` and run again", s.Queue, pipeline.DLQSuffix, m.Reason, s.Queue))
		}
	}
	if len(dead) == 0 {
		return false, ""
	}
	return true, strings.Join(dead, "; ")
}

// dead reports whether a failed batch's notification can no longer come
// (its message went to the dead-letter queue), so waiting would be forever.
func (e *Engine) dead(ctx context.Context, b sluice.Batch) bool {
	if b.EmailID != "" {
		return true
	}
	// Every stage queue, not only notify's: the stage failing the batch
	// holds its message in flight until it has sent the notify message,
	// and the batch is marked failed before that.
	for _, q := range e.StageQueues() {
		d, err := q.Depth(ctx)
		if err != nil || d.Visible+d.InFlight+d.Delayed > 0 {
			return false
		}
	}
	return true
}

// Path is the local file of an object key.
func (e *Engine) Path(key string) string {
	if key == "" {
		return ""
	}
	fs, ok := e.Blobs.(interface{ Path(string) (string, error) })
	if !ok {
		return ""
	}
	p, err := fs.Path(key)
	if err != nil {
		return ""
	}
	return p
}

// NoReferenceFile refuses a reference file for a feed (cfg narrowed by
// ForFeed) that enriches from an HTTP API: the file would go into a
// dataset the feed does not read, perhaps another feed's.
func NoReferenceFile(cfg *config.Pipeline) error {
	if !cfg.FromHTTP() {
		return nil
	}
	return fmt.Errorf("feed %s enriches from the HTTP API %s (reference.http); there is nothing to load", cfg.Feed, cfg.Reference.HTTP.URL)
}

// LoadReference makes a reference CSV the current version of the dataset
// the engine's feed (Feed) enriches from; new batches pin it. An unchanged
// file (same content as the current version) is skipped. Versions no
// unfinished batch uses are collected after a load. progress, when set,
// hears the bytes read so far.
func (e *Engine) LoadReference(ctx context.Context, path string, progress func(read int64)) (rows int, skipped bool, err error) {
	fc, err := e.Config.ForFeed(e.Feed)
	if err != nil {
		return 0, false, err
	}
	if err := NoReferenceFile(fc); err != nil {
		return 0, false, err
	}
	return e.LoadDataset(ctx, fc.Dataset(), path, progress)
}

// LoadDataset is LoadReference for a named reference dataset: only the
// feeds that name it see the new version.
func (e *Engine) LoadDataset(ctx context.Context, dataset, path string, progress func(read int64)) (rows int, skipped bool, err error) {
	cfg, err := e.Config.ForDataset(dataset)
	if err != nil {
		return 0, false, err
	}
	cat, err := e.Catalogs(dataset)
	if err != nil {
		return 0, false, err
	}
	res, err := reference.LoadFile(ctx, cat, path, cfg, progress)
	if err != nil {
		return 0, false, err
	}
	if !res.Skipped {
		if gone, err := reference.Collect(ctx, cat, e.Ledger, reference.Grace, time.Now()); err != nil {
			e.Logger.Warn("collecting old reference versions failed", "dataset", dataset, "error", err)
		} else if len(gone) > 0 {
			e.Logger.Info("old reference versions collected", "dataset", dataset, "versions", gone)
		}
	}
	return res.Version.Rows, res.Skipped, nil
}

// sampled are the queues whose depths the metrics show: each stage queue
// and its dead-letter queue.
func (e *Engine) sampled() []sluice.Queue {
	var qs []sluice.Queue
	for _, q := range pipeline.Queues() {
		qs = append(qs, e.Queues[q], e.DLQs[q])
	}
	return qs
}

// SampleOnce records the queues' depths and the batches by state now.
func (e *Engine) SampleOnce(ctx context.Context) {
	if err := e.Metrics.SampleOnce(ctx, e.sampled(), e.Ledger); err != nil {
		e.Logger.Warn("sampling batches by state", "err", err)
	}
}
