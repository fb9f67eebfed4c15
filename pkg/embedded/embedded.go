// Package embedded runs the whole pipeline in one process on one machine:
// the four stages over the local adapters (a directory bucket, SQLite
// queues, ledger and catalog, an .eml outbox). It is what `sluice run` and
// `sluice serve` use, and what a new user meets first.
//
// A data directory holds everything:
//
//	DIR/bucket/        the bucket (input/, input_archive/, <batch>/...)
//	DIR/sluice.db      queues and ledger
//	DIR/reference.idx  the reference catalog (a memory-mapped hash file)
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
	"github.com/sluicehq/sluice/pkg/csvscan"
	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/metrics"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/wire"
)

// Engine is an embedded pipeline on one data directory. Its ports (the
// embedded wire.Ports: Blobs, Queues, DLQs, Ledger, Catalog, Loader,
// Mailer) are the domain interfaces; which adapters stand behind them is
// wire.Local's business.
type Engine struct {
	Dir    string
	Config *config.Pipeline
	Logger *slog.Logger
	// Workers is how many chunks are processed at once; default: the CPUs.
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

	*wire.Ports

	lock *os.File
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
	if e.Ports, err = wire.Local(abs); err != nil {
		unlockDir(e.lock)
		return nil, err
	}
	return e, nil
}

// Close releases the directory.
func (e *Engine) Close() error {
	var errs []error
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
		rec = e.Metrics
	}
	d := e.Ports.Deps(e.Config, e.Logger, rec)
	d.Fault = e.Fault
	return d
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
			return fmt.Errorf("autoscale: %q is not a stage (want one of split, process, merge, notify)", name)
		}
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
		e.runStage(ctx, g, s, s.New(d))
	}
	if e.Metrics != nil {
		g.Go(func() error { e.Metrics.Sample(ctx, 2*time.Second, e.sampled(), e.Ledger); return nil })
	}
	return g.Wait()
}

// runStage starts one stage's consumer, and its autoscaler when it has a
// policy. Every stage runs one handler at a time but process, which runs
// Workers.
func (e *Engine) runStage(ctx context.Context, g *errgroup.Group, s pipeline.Stage, h pipeline.Handler) {
	n := s.Concurrency
	if n == 0 {
		n = max(1, e.Workers)
	}
	q := e.Queues[s.Queue]
	// The stage's own visibility, as on AWS: a heartbeat extends it while
	// a message is handled, and Run releases what a dead process held.
	o := consumer.Options{Name: s.Name, Concurrency: n, Visibility: s.Visibility, Wait: 5 * time.Second, Logger: e.Logger, Drain: 10 * time.Second}
	if e.Metrics != nil {
		o.Observer = e.Metrics
		e.Metrics.Workers.WithLabelValues(s.Name, "current").Set(float64(n))
		e.Metrics.Workers.WithLabelValues(s.Name, "desired").Set(float64(n))
	}
	c := consumer.New(q, h, o)
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
	etag, size, err := fsblob.ETagOfFile(path)
	if err != nil {
		return Submission{}, err
	}
	key := pipeline.InputPrefix + pipeline.SafeName(name)
	if err := sluice.ValidateKey(pipeline.InputPrefix + name); err != nil {
		return Submission{}, fmt.Errorf("the file name cannot be used as an object key: %w", err)
	}
	prev, err := e.Ledger.ListBatches(ctx, sluice.BatchFilter{Key: key})
	if err != nil {
		return Submission{}, err
	}
	gen := 0
	for _, b := range prev {
		if b.ETag != etag {
			if !b.State.Terminal() && e.readsInput(ctx, b) {
				return Submission{}, fmt.Errorf("%w: batch %s (%s) has not ended and still reads input/%s; run the earlier file again to finish it, or submit this one under another name", ErrBusy, b.ID, b.State, pipeline.SafeName(name))
			}
			continue
		}
		if !b.State.Terminal() {
			return Submission{BatchID: b.ID, Key: key, Resumed: true}, nil
		}
		gen++
	}
	seq := strconv.Itoa(gen + 1)
	f, err := os.Open(path)
	if err != nil {
		return Submission{}, err
	}
	defer f.Close()
	info, err := e.Blobs.Put(ctx, key, f)
	if err != nil {
		return Submission{}, err
	}
	if info.ETag != etag || info.Size != size {
		return Submission{}, fmt.Errorf("%s changed while it was being read", path)
	}
	ev := sluice.ObjectCreated{
		Version: sluice.MessageVersion, Bucket: e.Blobs.Bucket(), Key: key, Size: size, ETag: etag,
		Sequence: seq, EventTime: time.Now().UTC().Format(time.RFC3339Nano),
	}
	if key != pipeline.InputPrefix+name {
		ev.Name = name
	}
	if err := e.Queues[pipeline.QueueIngest].Send(ctx, sluice.Encode(ev)); err != nil {
		return Submission{}, err
	}
	return Submission{BatchID: sluice.BatchID(e.Blobs.Bucket(), key, etag, seq), Key: key}, nil
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
		return sub, sluice.Batch{}, err
	}
	if submitted != nil {
		submitted(sub)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	b, err := e.Wait(ctx, sub.BatchID, progress)
	stop()
	if rerr := <-done; err == nil && rerr != nil && !errors.Is(rerr, context.Canceled) {
		err = rerr
	}
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
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var last sluice.Batch
	idleSince := time.Time{}
	for i := 0; ; i++ {
		b, err := e.Ledger.GetBatch(ctx, id)
		if err != nil && !errors.Is(err, sluice.ErrNotFound) {
			return b, err
		}
		if err == nil {
			if progress != nil && (b.UpdatedAt != last.UpdatedAt || b.State != last.State) {
				progress(b)
			}
			last = b
			if b.State.Terminal() && (b.EmailID != "" || b.State == sluice.StateFailed && e.dead(ctx, b)) {
				return b, nil
			}
		}
		if i%10 == 0 { // every half second: is anything left to do?
			if stalled, why := e.stalled(ctx); !stalled {
				idleSince = time.Time{}
			} else if idleSince.IsZero() {
				idleSince = time.Now()
			} else if time.Since(idleSince) > 2*time.Second {
				return last, fmt.Errorf("%w: no work is left in the queues, and %s", ErrStalled, why)
			}
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-t.C:
		}
	}
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

// LoadReference fills the catalog from a reference CSV whose header names
// the configured key column. It skips the load when the same file (same
// name and content) was the last one loaded. progress, when set, hears the
// bytes read so far.
func (e *Engine) LoadReference(ctx context.Context, path string, progress func(read int64)) (rows int, skipped bool, err error) {
	etag, _, err := fsblob.ETagOfFile(path)
	if err != nil {
		return 0, false, err
	}
	stamp := filepath.Base(path) + " " + etag
	stampFile := filepath.Join(e.Dir, "reference.loaded")
	if old, err := os.ReadFile(stampFile); err == nil && strings.TrimSpace(string(old)) == stamp {
		return 0, true, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	n, err := LoadCatalog(ctx, e.Loader, f, e.Config, progress)
	if err != nil {
		os.Remove(stampFile)
		return 0, false, fmt.Errorf("%s: %w", path, err)
	}
	return n, false, os.WriteFile(stampFile, []byte(stamp+"\n"), 0o644)
}

// LoadCatalog reads a reference CSV into any catalog loader: the key column
// (cfg.Reference.Key) first, the rest in file order.
func LoadCatalog(ctx context.Context, ld sluice.CatalogLoader, r io.Reader, cfg *config.Pipeline, progress func(int64)) (int, error) {
	sc := csvscan.NewScanner(r, cfg.Delim(), cfg.Limits.MaxLineBytes)
	raw, err := sc.Next()
	if err == io.EOF {
		return 0, errors.New("the reference file is empty")
	}
	if err != nil {
		return 0, err
	}
	hf, _, err := csvscan.Split(csvscan.TrimEOL(raw), cfg.Delim(), nil, nil)
	if err != nil {
		return 0, fmt.Errorf("reference header: %w", err)
	}
	key := -1
	cols := []string{}
	for i, f := range hf {
		if string(f) == cfg.Reference.Key {
			key = i
		}
	}
	if key < 0 {
		return 0, fmt.Errorf("the reference header has no key column %q", cfg.Reference.Key)
	}
	cols = append(cols, string(hf[key]))
	for i, f := range hf {
		if i != key {
			cols = append(cols, string(f))
		}
	}
	var fields [][]byte
	var scratch []byte
	row := make([]string, len(cols))
	n := 0
	next := func() ([]string, error) {
		rec, err := sc.Next()
		if err != nil {
			return nil, err
		}
		n++
		if progress != nil && n%50000 == 0 {
			progress(sc.Offset())
		}
		fields, scratch, err = csvscan.Split(csvscan.TrimEOL(rec), cfg.Delim(), fields, scratch)
		if err != nil {
			return nil, fmt.Errorf("reference line %d: %w", sc.Line(), err)
		}
		if len(fields) != len(cols) {
			return nil, fmt.Errorf("reference line %d has %d fields, its header has %d", sc.Line(), len(fields), len(cols))
		}
		row[0] = string(fields[key])
		j := 1
		for i, f := range fields {
			if i != key {
				row[j] = string(f)
				j++
			}
		}
		return row, nil
	}
	return ld.Load(ctx, cols, next)
}

// ForgetReference makes the next LoadReference load even an unchanged file.
func (e *Engine) ForgetReference() { os.Remove(filepath.Join(e.Dir, "reference.loaded")) }

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
func (e *Engine) SampleOnce(ctx context.Context) { e.Metrics.SampleOnce(ctx, e.sampled(), e.Ledger) }
