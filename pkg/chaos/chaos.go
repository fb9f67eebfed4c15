// Package chaos proves "nothing lost, nothing twice" with real crashes: it
// runs one generated batch through the four services as separate
// processes, on the local backend (one data directory) or on the AWS
// emulators, while it SIGKILLs a randomly chosen service process at random
// moments and restarts it. The batch passes when its output and error
// report are byte-identical to a clean embedded run of the same file and
// configuration, every rejected row is in the report and in the ledger
// exactly once, exactly one email went out, and nothing is left in a queue
// or a dead-letter queue.
//
// cmd/sluice-chaos (`make chaos`) and services/chaos_test.go drive it.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// Stages are the services, in pipeline order (pipeline.Topology).
var Stages = pipeline.Services()

// Options configure one chaos run. Zero values take the defaults shown.
type Options struct {
	Backend   string // "local" or "aws"
	Rows      int    // generated order rows; default 100000
	ChunkRows int    // the pipeline's chunkRows; default 10000
	Kills     int    // SIGKILLs to deliver; default 20 (a negative number: none)
	Seed      int64  // seeds the choice of victims and the gaps, not the data
	// DataSeed seeds the generated data; default 1.
	DataSeed int64
	// BadRate is the share of faulty rows; default 0.03.
	BadRate float64
	// Bins maps each stage (Stages) to its service binary.
	Bins map[string]string
	// Targets are the stages whose processes may be killed; default all
	// but the deliverer (idle: the chaos job has no sinks).
	Targets []string
	// Workers is how many worker processes run; default 2.
	Workers int
	// Concurrency, when set, is SLUICE_CONCURRENCY for the workers.
	Concurrency int
	// MinGap and MaxGap bound the random pause between two kills; each
	// kill also waits for a random point of the batch's progress. Default
	// 50ms–400ms locally, where a clean batch of 1M rows takes seconds,
	// and 250ms–1.5s on the emulators.
	MinGap, MaxGap time.Duration
	// MinRestart and MaxRestart bound how long a killed service stays
	// down; default 100ms–1s.
	MinRestart, MaxRestart time.Duration
	// Visibility is SLUICE_VISIBILITY for every stage: how soon a killed
	// process's messages come back. Default 5s locally, 10s on the
	// emulators (local-aws-sqs counts every heartbeat as a receive).
	Visibility time.Duration
	// MaxReceive is the AWS queues' redrive max-receive count; default 50,
	// so that work lost to kills is retried rather than dead-lettered.
	MaxReceive int
	// Timeout bounds the wait for the batch; default proportional to Rows.
	Timeout time.Duration
	// Dir holds the data, the clean run and the services' logs; default: a
	// temporary directory, removed after a passing run unless Keep.
	Dir  string
	Keep bool
	// AWS, when set, is a running set of emulators (or an external stack)
	// to use; otherwise Run starts its own for the aws backend.
	AWS *awstest.Env
	// Out hears progress; default: nowhere.
	Out io.Writer
}

func (o *Options) defaults() error {
	switch o.Backend {
	case "local", "aws":
	default:
		return fmt.Errorf("chaos: backend %q: want local or aws", o.Backend)
	}
	local := o.Backend == "local"
	def := func(d *time.Duration, l, a time.Duration) {
		if *d <= 0 {
			*d = a
			if local {
				*d = l
			}
		}
	}
	if o.Rows <= 0 {
		o.Rows = 100000
	}
	if o.ChunkRows <= 0 {
		o.ChunkRows = 10000
	}
	if o.Kills == 0 {
		o.Kills = 20
	}
	o.Kills = max(o.Kills, 0)
	if o.DataSeed == 0 {
		o.DataSeed = 1
	}
	if o.BadRate <= 0 {
		o.BadRate = 0.03
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	def(&o.MinGap, 50*time.Millisecond, 250*time.Millisecond)
	def(&o.MaxGap, 400*time.Millisecond, 1500*time.Millisecond)
	o.MaxGap = max(o.MaxGap, o.MinGap)
	def(&o.MinRestart, 100*time.Millisecond, 100*time.Millisecond)
	def(&o.MaxRestart, time.Second, time.Second)
	o.MaxRestart = max(o.MaxRestart, o.MinRestart)
	def(&o.Visibility, 5*time.Second, 10*time.Second)
	if o.MaxReceive <= 0 {
		o.MaxReceive = 50
	}
	// Generous: a clean local run does 1M rows in seconds, the emulators
	// take minutes; every kill can cost a visibility timeout on top.
	perMillion := 5 * time.Minute
	if !local {
		perMillion = 60 * time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 2*time.Minute + time.Duration(float64(perMillion)*float64(o.Rows)/1e6) + time.Duration(o.Kills)*o.Visibility
	}
	if len(o.Targets) == 0 {
		// The chaos job configures no deliver: sinks, so the deliverer
		// runs idle: killing it proves nothing, and counting it among the
		// victims would change every seed's schedule of kills (the
		// documented runs). Name it in Targets to kill it anyway.
		o.Targets = slices.DeleteFunc(slices.Clone(Stages), func(s string) bool { return s == "deliverer" })
	}
	for _, t := range o.Targets {
		if !slices.Contains(Stages, t) {
			return fmt.Errorf("chaos: target %q: want one of %s", t, strings.Join(Stages, ", "))
		}
	}
	for _, s := range Stages {
		if o.Bins[s] == "" {
			return fmt.Errorf("chaos: no binary for the %s service in Options.Bins", s)
		}
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return nil
}

// Report is what one run did and found.
type Report struct {
	Backend   string
	Seed      int64
	Rows      int // rows in the input
	ChunkRows int
	Chunks    int
	Workers   int

	// Kills counts SIGKILLs by stage; KillsDuringBatch those delivered
	// before the batch completed.
	Kills            map[string]int
	KillsDuringBatch int
	Restarts         int
	// SelfExits are services that exited without being killed (a crash).
	SelfExits []string

	Setup     time.Duration // data, clean run, emulators, reference load
	BatchTime time.Duration // from submit until the batch was completed and mailed
	Wall      time.Duration // the whole run

	BatchID        string
	State          string
	RowsOut        int
	Rejected       int // the batch's rowsRejected
	CleanRejected  int // the clean run's
	LedgerRejected int // rejected rows in the ledger
	ReportRejected int // data lines in the error report
	DuplicateLines int // line numbers seen twice in the error report or the ledger

	OutputEqual bool // byte-identical to the clean run
	ErrorsEqual bool
	OutputSHA   string
	ErrorsSHA   string

	Emails int
	// SESGap: two emails on AWS after a notifier kill after the merge, the
	// documented gap (docs/exactly-once.md); shown as "2 (SES gap)".
	SESGap       bool
	QueuesEmpty  bool
	DeadLettered int // messages in the dead-letter queues
	StoppedClean bool

	// Failures lists every check that did not hold; empty means pass.
	Failures []string
	// Dir is where the data and logs are, when they were kept.
	Dir string
}

// OK reports whether every check held.
func (r Report) OK() bool { return len(r.Failures) == 0 }

// TotalKills sums Kills.
func (r Report) TotalKills() int {
	n := 0
	for _, k := range r.Kills {
		n += k
	}
	return n
}

func (r *Report) failf(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// Run performs one chaos run. The error is non-nil when the run could not
// be carried out or a check failed; the Report says as much as was found.
func Run(ctx context.Context, o Options) (rep Report, err error) {
	t0 := time.Now()
	if err := o.defaults(); err != nil {
		return Report{Backend: o.Backend}, err
	}
	r := &run{o: o, t0: t0, rep: &rep}
	rep = Report{Backend: o.Backend, Seed: o.Seed, ChunkRows: o.ChunkRows, Workers: o.Workers, Kills: map[string]int{}}
	for _, s := range Stages {
		rep.Kills[s] = 0
	}
	if r.dir, err = workDir(o); err != nil {
		return rep, err
	}
	defer func() {
		rep.Wall = time.Since(t0)
		if err == nil && len(rep.Failures) > 0 {
			err = fmt.Errorf("chaos %s: %s", o.Backend, strings.Join(rep.Failures, "; "))
		}
		if err == nil && !o.Keep && o.Dir == "" {
			os.RemoveAll(r.dir)
		} else {
			rep.Dir = r.dir
		}
	}()
	if err := r.prepare(ctx); err != nil {
		return rep, err
	}
	defer r.be.close()
	if err := r.startServices(ctx); err != nil {
		return rep, err
	}
	defer func() {
		rep.StoppedClean = r.sup.stopAll(30 * time.Second)
		if !rep.StoppedClean {
			rep.failf("a service did not stop within 30s of SIGTERM")
		}
	}()
	rep.Setup = time.Since(t0)
	b, ok, err := r.batchUnderFire(ctx)
	if err != nil || !ok {
		return rep, err
	}
	return rep, r.settle(ctx, b)
}

// run is one chaos run in progress.
type run struct {
	o      Options
	t0     time.Time
	rep    *Report
	dir    string
	orders string // the generated input
	clean  clean
	cfg    string // the pipeline configuration file
	be     backend
	sup    *supervisor
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.o.Out, "[%s %6.1fs] %s\n", r.o.Backend, time.Since(r.t0).Seconds(), fmt.Sprintf(format, args...))
}

// workDir makes the run's directory: Options.Dir, or a temporary one.
func workDir(o Options) (string, error) {
	dir := o.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "sluice-chaos-"+o.Backend+"-"); err != nil {
			return "", err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return filepath.Abs(dir)
}

// prepare generates the data, runs it once cleanly on the embedded engine
// (what the chaos run must match), writes the configuration and sets up
// the backend.
func (r *run) prepare(ctx context.Context) error {
	o := r.o
	orders, fin, st, err := gen.WriteFiles(filepath.Join(r.dir, "in"), gen.Options{Rows: o.Rows, Seed: o.DataSeed, BadRate: o.BadRate})
	if err != nil {
		return err
	}
	r.orders, r.rep.Rows = orders, st.Rows
	r.logf("generated %d rows (%d faulty) in %s", st.Rows, st.Bad, orders)
	if r.clean, err = cleanRun(ctx, filepath.Join(r.dir, "clean"), o.ChunkRows, orders, fin); err != nil {
		return fmt.Errorf("chaos: the clean run: %w", err)
	}
	r.rep.CleanRejected = r.clean.batch.RowsRejected
	r.logf("clean embedded run: %d chunks, %d rows out, %d rejected", r.clean.batch.TotalChunks, r.clean.batch.RowsOut, r.clean.batch.RowsRejected)
	r.cfg = filepath.Join(r.dir, "pipeline.yaml")
	if err := os.WriteFile(r.cfg, fmt.Appendf(nil, "chunkRows: %d\n", o.ChunkRows), 0o644); err != nil {
		return err
	}
	if o.Backend == "local" {
		r.be, err = newLocal(ctx, filepath.Join(r.dir, "data"), fin)
	} else {
		r.be, err = newAWS(ctx, o, fin, r.logf)
	}
	return err
}

// startServices starts every service under the supervisor.
func (r *run) startServices(ctx context.Context) error {
	env := append(r.be.env(),
		"SLUICE_CONFIG="+r.cfg, "SLUICE_WAIT=1s",
		"SLUICE_VISIBILITY="+r.o.Visibility.String(), "SLUICE_LOG_LEVEL=info")
	if _, onAWS := r.be.(*awsBackend); onAWS {
		// The services dead-letter on the receive the queues allow last.
		env = append(env, fmt.Sprintf("SLUICE_MAX_RECEIVE=%d", r.o.MaxReceive))
	}
	rng := rand.New(rand.NewPCG(uint64(r.o.Seed), uint64(r.o.Seed)^0x5eed_c4a0_5eed_c4a0))
	r.sup = newSupervisor(r.o, env, filepath.Join(r.dir, "logs"), rng, r.logf)
	return r.sup.startAll(ctx)
}

// batchUnderFire submits the file and kills services while it waits for
// the batch. ok is false when the batch did not complete (a failure is
// recorded).
func (r *run) batchUnderFire(ctx context.Context) (b sluice.Batch, ok bool, err error) {
	o, rep := r.o, r.rep
	tSubmit := time.Now()
	id, err := r.be.submit(ctx, r.orders)
	if err != nil {
		return b, false, err
	}
	r.logf("submitted %s", filepath.Base(r.orders))
	wctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	tr := &tracker{expect: r.clean.batch.TotalChunks, begun: make(chan struct{})}
	killsDone := make(chan struct{})
	go func() {
		defer close(killsDone)
		select {
		case <-tr.begun:
		case <-wctx.Done():
			return
		}
		r.sup.killLoop(wctx, o.Kills, tr.progress)
	}()
	poll := 20 * time.Millisecond
	if o.Backend == "aws" {
		poll = 250 * time.Millisecond // dynalite is slow enough already
	}
	b, werr := waitBatch(wctx, r.be, id, tr, poll, r.logf)
	if werr == nil {
		rep.BatchTime = time.Since(tSubmit)
		r.logf("batch %s %s after %.1fs", b.ID, b.State, rep.BatchTime.Seconds())
	}
	<-killsDone
	rep.KillsDuringBatch = r.sup.killsBefore(tSubmit.Add(rep.BatchTime))
	if werr != nil {
		rep.KillsDuringBatch = r.sup.killsBefore(time.Now())
	}
	for _, s := range Stages {
		rep.Kills[s] = r.sup.kills[s]
	}
	if werr != nil {
		rep.failf("the batch did not complete within %v: %v (state %s, chunks %d/%d)", o.Timeout, werr, b.State, b.DoneChunks, b.TotalChunks)
		rep.State = string(b.State)
		return b, false, nil
	}
	rep.BatchID, rep.State, rep.Chunks, rep.RowsOut, rep.Rejected = b.ID, string(b.State), b.TotalChunks, b.RowsOut, b.RowsRejected
	if b.State != sluice.StateCompleted {
		rep.failf("batch %s ended %s: %s", b.ID, b.State, b.Reason)
	}
	return b, true, nil
}

// settle waits for every service to be back and the retries and
// duplicates to drain, then checks the queues, the dead-letter queues and
// the batch's results against the clean run.
func (r *run) settle(ctx context.Context, b sluice.Batch) error {
	o, rep := r.o, r.rep
	if err := r.sup.waitAllUp(ctx, o.MaxRestart+30*time.Second); err != nil {
		rep.failf("%v", err)
	}
	rep.Restarts = r.sup.restartCount()
	rep.SelfExits = r.sup.selfExits()
	for _, e := range rep.SelfExits {
		rep.failf("a service exited without being killed: %s", e)
	}
	r.logf("kills done: %s (%d during the batch), %d restarts; waiting for the queues to drain", killSummary(rep.Kills), rep.KillsDuringBatch, rep.Restarts)
	empty, depths := drain(ctx, r.be, 3*o.Visibility+time.Minute)
	rep.QueuesEmpty = empty
	if !empty {
		rep.failf("queues not empty after the batch: %s", depths)
	}
	for name, q := range r.be.dlqs() {
		d, err := q.Depth(ctx)
		if err != nil {
			rep.failf("dead-letter queue %s: %v", name, err)
			continue
		}
		if n := d.Visible + d.InFlight + d.Delayed; n > 0 {
			rep.DeadLettered += n
			rep.failf("dead-letter queue %s holds %d messages", name, n)
		}
	}
	// The SES gap (docs/exactly-once.md): SES has no idempotency, so a
	// notifier killed between SendEmail and recording it sends a second
	// email when the message comes back. That window opens with the merge;
	// on AWS a second email is the documented outcome of a notifier kill
	// after it, and nothing else may explain one.
	sesGap := r.o.Backend == "aws" && !b.MergedAt.IsZero() && r.sup.killedSince("notifier", b.MergedAt)
	if err := check(ctx, r.be, b, r.clean, rep, sesGap); err != nil {
		return err
	}
	r.logf("checked: output equal %v, errors equal %v, %d emails", rep.OutputEqual, rep.ErrorsEqual, rep.Emails)
	return nil
}

// tracker shares the batch's progress with the kill loop.
type tracker struct {
	expect int // chunks, from the clean run
	begun  chan struct{}
	mu     sync.Mutex
	seen   bool
	b      sluice.Batch
	done   bool
}

func (t *tracker) set(b sluice.Batch, done bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.seen {
		t.seen = true
		close(t.begun)
	}
	t.b, t.done = b, done
}

// progress places the batch on [0, 1]: chunks done up to 0.88, merging
// 0.9, notifying 0.97, finished 1.
func (t *tracker) progress() (float64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.done || t.b.State.Terminal():
		return 1, true
	case t.b.State == sluice.StateNotifying:
		return 0.97, false
	case t.b.State == sluice.StateMerging:
		return 0.9, false
	}
	return 0.88 * float64(t.b.DoneChunks) / float64(max(t.expect, 1)), false
}

// waitBatch polls the ledger until the batch is final and mailed.
func waitBatch(ctx context.Context, be backend, id string, tr *tracker, poll time.Duration, logf func(string, ...any)) (sluice.Batch, error) {
	var b sluice.Batch
	lastLog := time.Now()
	defer func() { tr.set(b, true) }()
	for {
		got, err := be.batch(ctx, id)
		if err == nil {
			b = got
			if b.State.Terminal() && (b.EmailID != "" || b.State == sluice.StateFailed) {
				return b, nil
			}
			tr.set(b, false)
		} else if !errors.Is(err, sluice.ErrNotFound) && ctx.Err() == nil {
			logf("reading the batch: %v", err)
		}
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			logf("batch %s: %s, %d/%d chunks", b.ID, b.State, b.DoneChunks, b.TotalChunks)
		}
		select {
		case <-ctx.Done():
			return b, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// drain waits until every stage queue is empty twice in a row.
func drain(ctx context.Context, be backend, within time.Duration) (bool, string) {
	deadline := time.Now().Add(within)
	streak := 0
	var desc string
	for {
		total := 0
		var parts []string
		names := slices.Sorted(maps.Keys(be.queues()))
		for _, name := range names {
			d, err := be.queues()[name].Depth(ctx)
			if err != nil {
				total++
				parts = append(parts, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			n := d.Visible + d.InFlight + d.Delayed
			total += n
			parts = append(parts, fmt.Sprintf("%s %d visible/%d in flight/%d delayed", name, d.Visible, d.InFlight, d.Delayed))
		}
		desc = strings.Join(parts, ", ")
		if total == 0 {
			if streak++; streak >= 2 {
				return true, desc
			}
		} else {
			streak = 0
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false, desc
		}
		time.Sleep(time.Second)
	}
}
