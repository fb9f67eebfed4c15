// Package consumer is the queue loop every stage runs in, written once for
// the embedded pipeline and the services alike: it receives messages, runs
// the handler with a visibility heartbeat, deletes what succeeded, releases
// what failed with a growing delay, sends what can never succeed to the
// dead-letter queue at once, recovers panics, and on shutdown stops
// receiving and lets in-flight work finish within a deadline.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"github.com/sluicehq/sluice/pkg/tracing"
	"go.opentelemetry.io/otel/attribute"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Handler handles one message. A nil error deletes it; an error marked
// sluice.Permanent dead-letters it; any other error retries it later.
type Handler func(ctx context.Context, m sluice.Message) error

// Options tune a consumer. Zero values take the defaults shown.
type Options struct {
	Name        string        // for logs and metrics; default: the queue's name
	Concurrency int           // handlers at once; default 1
	Visibility  time.Duration // per receive; default 60s
	Wait        time.Duration // long poll; default 20s
	// Heartbeat extends visibility this often while a handler runs;
	// default Visibility/2.
	Heartbeat time.Duration
	// Backoff is the delay before a failed message is visible again,
	// by receive count; default: 1s, 2s, 4s … capped at 5 minutes.
	Backoff func(receiveCount int) time.Duration
	// Drain bounds how long in-flight handlers may run after the context
	// ends; past it they are cancelled and their messages released.
	// Default 25s, inside ECS's default 30s stop timeout.
	Drain  time.Duration
	Logger *slog.Logger
	// Observer, when set, hears about every outcome (for metrics).
	Observer Observer
	// Busy, when set, is told when the consumer goes from idle to busy and
	// back (for ECS task scale-in protection).
	Busy func(busy bool)
	// MaxReceive, when set, is the queue's max-receive count: a message
	// that fails on its last allowed receive is dead-lettered by the
	// consumer with its error as the reason (instead of silently by the
	// queue on the next receive), so OnDeadLetter hears about it.
	MaxReceive int
	// OnDeadLetter, when set, hears about every message the consumer
	// dead-letters and why, so the pipeline can fail its batch with that
	// reason instead of leaving it stalled (see pipeline.Deps.DeadLettered).
	OnDeadLetter func(ctx context.Context, stage string, m sluice.Message, cause error)
	// Fatal, when set, picks the errors no retry on this machine can fix
	// soon (a full disk): the message is left in flight, the consumer stops
	// receiving, and Run returns that error after the drain, so the process
	// ends within a bounded time instead of backing off forever.
	Fatal func(err error) bool
}

// Observer receives the consumer's events. name is Options.Name (the
// stage); reason is the dead-letter reason (sluice.ReasonOf), else "".
type Observer interface {
	Received(name string, n int)
	Handled(name string, outcome Outcome, reason string, d time.Duration)
}

// Outcome is how one message ended.
type Outcome string

const (
	Succeeded    Outcome = "succeeded"
	Retried      Outcome = "retried"
	DeadLettered Outcome = "dead_lettered"
)

// DefaultBackoff doubles from one second up to five minutes.
func DefaultBackoff(n int) time.Duration {
	d := time.Second
	for i := 1; i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

func (o *Options) defaults(q sluice.Queue) {
	if o.Name == "" {
		o.Name = q.Name()
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.Visibility <= 0 {
		o.Visibility = 60 * time.Second
	}
	if o.Wait <= 0 {
		o.Wait = 20 * time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = o.Visibility / 2
	}
	if o.Backoff == nil {
		o.Backoff = DefaultBackoff
	}
	if o.Drain <= 0 {
		o.Drain = 25 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Consumer runs one handler over one queue.
type Consumer struct {
	q    sluice.Queue
	h    Handler
	opt  Options
	busy atomic.Int64
	lim  *limiter

	mu    sync.Mutex
	avg   float64 // moving average of handler seconds
	fatal error   // the first error Options.Fatal picked
	stop  context.CancelFunc
}

// New returns a consumer; Run starts it.
func New(q sluice.Queue, h Handler, opt Options) *Consumer {
	opt.defaults(q)
	opt.Logger = tracing.Logger(opt.Logger)
	return &Consumer{q: q, h: h, opt: opt, lim: newLimiter(opt.Concurrency)}
}

// InFlight is how many messages are being handled now.
func (c *Consumer) InFlight() int { return int(c.busy.Load()) }

// SetConcurrency changes how many handlers may run at once; lowering it
// lets running handlers finish. Zero stops receiving until it is raised.
func (c *Consumer) SetConcurrency(n int) { c.lim.setLimit(max(n, 0)) }

// Concurrency is the current limit.
func (c *Consumer) Concurrency() int { return c.lim.getLimit() }

// AvgSeconds is a moving average of the time a message takes to handle;
// zero before the first one.
func (c *Consumer) AvgSeconds() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.avg
}

func (c *Consumer) observe(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.avg == 0 {
		c.avg = d.Seconds()
	} else {
		c.avg = 0.8*c.avg + 0.2*d.Seconds()
	}
}

// limiter is a semaphore whose size can change while it is held.
type limiter struct {
	mu      sync.Mutex
	limit   int
	used    int
	changed chan struct{} // closed and replaced on every release or resize
}

func newLimiter(n int) *limiter { return &limiter{limit: n, changed: make(chan struct{})} }

func (l *limiter) signal() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *limiter) acquire(ctx context.Context) bool {
	for {
		l.mu.Lock()
		if l.used < l.limit {
			l.used++
			l.mu.Unlock()
			return true
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

func (l *limiter) tryAcquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.used < l.limit {
		l.used++
		return true
	}
	return false
}

func (l *limiter) release() {
	l.mu.Lock()
	l.used--
	l.signal()
	l.mu.Unlock()
}

func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.signal()
	l.mu.Unlock()
}

func (l *limiter) getLimit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}

// Run receives until ctx ends, then drains. It returns nil after a clean
// shutdown.
func (c *Consumer) Run(parent context.Context) error {
	// A fatal handler error ends the receive loop as the context would.
	ctx, stopReceiving := context.WithCancel(parent)
	defer stopReceiving()
	c.mu.Lock()
	c.stop = stopReceiving
	c.mu.Unlock()
	// Handlers run under their own context, so stopping the receive loop
	// does not cut a chunk in half; Drain bounds the wait.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	log := c.opt.Logger.With("queue", c.opt.Name)
	failures := 0
	for ctx.Err() == nil {
		// Wait for a free slot before receiving, so no message sits
		// invisible in memory while the handlers are all busy.
		if !c.lim.acquire(ctx) {
			continue
		}
		free := 1
		for free < 10 && c.lim.tryAcquire() {
			free++
		}
		msgs, err := c.q.Receive(ctx, free, c.opt.Visibility, c.opt.Wait)
		for range free - len(msgs) {
			c.lim.release()
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if c.opt.Fatal != nil && c.opt.Fatal(err) {
				log.ErrorContext(ctx, "receive failed in a way retrying cannot fix; stopping", "err", err)
				c.setFatal(err)
				break
			}
			failures++
			d := DefaultBackoff(failures)
			log.ErrorContext(ctx, "receive failed; backing off", "err", err, "delay", d)
			sleep(ctx, d)
			continue
		}
		failures = 0
		if c.opt.Observer != nil && len(msgs) > 0 {
			c.opt.Observer.Received(c.opt.Name, len(msgs))
		}
		for _, m := range msgs {
			wg.Add(1)
			if c.busy.Add(1) == 1 && c.opt.Busy != nil {
				c.opt.Busy(true)
			}
			go func() {
				defer wg.Done()
				defer c.lim.release()
				c.handle(work, log, m)
				if c.busy.Add(-1) == 0 && c.opt.Busy != nil {
					c.opt.Busy(false)
				}
			}()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.opt.Drain):
		log.WarnContext(ctx, "drain deadline passed; cancelling in-flight handlers", "in_flight", c.InFlight())
		cancelWork()
		<-done
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fatal
}

// setFatal records the first fatal error and stops receiving.
func (c *Consumer) setFatal(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fatal == nil {
		c.fatal = err
	}
	if c.stop != nil {
		c.stop()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (c *Consumer) handle(ctx context.Context, log *slog.Logger, m sluice.Message) {
	start := time.Now()
	// A span per message, continuing the sender's trace: a batch's
	// messages all descend from the split's span, so a batch is one trace.
	ctx, span := tracing.StartRemote(ctx, m.Trace, c.opt.Name)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.message.id", m.ID), attribute.Int("sluice.receive_count", m.ReceiveCount))
	}
	// The lines below log with ctx: their handler (tracing.LogHandler)
	// adds its trace_id and span_id, so the logs link to the trace.
	hctx, stop := context.WithCancel(ctx)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(c.opt.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				if err := c.q.Extend(hctx, m.Receipt, c.opt.Visibility); err != nil && hctx.Err() == nil {
					log.WarnContext(ctx, "visibility heartbeat failed", "message_id", m.ID, "err", err)
				}
			}
		}
	}()
	err := c.safeHandle(hctx, m)
	stop()
	<-hbDone
	defer tracing.End(span, err)

	// Acknowledge even if the handler's context was cancelled at drain.
	ack := context.WithoutCancel(ctx)
	outcome, reason := Succeeded, ""
	switch {
	case err == nil:
		if derr := c.q.Delete(ack, m.Receipt); derr != nil {
			log.ErrorContext(ctx, "delete failed; the message will come back", "message_id", m.ID, "err", derr)
		}
	case c.opt.Fatal != nil && c.opt.Fatal(err):
		// Left in flight: the next start releases it, and the receive
		// it cost is the only trace of this run.
		outcome = Retried
		log.ErrorContext(ctx, "handler failed in a way retrying cannot fix; stopping", "message_id", m.ID, "err", err.Error())
		c.setFatal(err)
	case sluice.IsPermanent(err):
		outcome, reason = DeadLettered, sluice.ReasonOf(err)
		log.ErrorContext(ctx, "message can never succeed; sent to the dead-letter queue", "message_id", m.ID, "reason", reason, "err", err.Error())
		c.deadLetter(ack, log, m, err.Error(), err)
	case c.opt.MaxReceive > 0 && m.ReceiveCount >= c.opt.MaxReceive:
		outcome, reason = DeadLettered, ReasonMaxReceive
		why := fmt.Sprintf("failed on each of %d tries, last: %v", m.ReceiveCount, err)
		log.ErrorContext(ctx, "message failed on its last try; sent to the dead-letter queue", "message_id", m.ID, "receive_count", m.ReceiveCount, "err", err.Error())
		c.deadLetter(ack, log, m, why, errors.New(why))
	default:
		outcome = Retried
		delay := c.opt.Backoff(m.ReceiveCount)
		if ctx.Err() != nil {
			delay = 0 // shutting down: let another consumer have it now
		}
		log.WarnContext(ctx, "handler failed; will retry", "message_id", m.ID, "receive_count", m.ReceiveCount, "delay", delay, "err", err.Error())
		if derr := c.q.Extend(ack, m.Receipt, delay); derr != nil {
			log.ErrorContext(ctx, "release failed; the message comes back after its timeout", "message_id", m.ID, "err", derr)
		}
	}
	if outcome == Succeeded {
		c.observe(time.Since(start))
	}
	if c.opt.Observer != nil {
		c.opt.Observer.Handled(c.opt.Name, outcome, reason, time.Since(start))
	}
}

// deadLetter moves m to the dead-letter queue and tells OnDeadLetter.
func (c *Consumer) deadLetter(ctx context.Context, log *slog.Logger, m sluice.Message, reason string, cause error) {
	if derr := c.q.DeadLetter(ctx, m, reason); derr != nil {
		// Not moved: the queue retries it, and its redrive policy moves it.
		log.ErrorContext(ctx, "dead-lettering failed", "message_id", m.ID, "err", derr)
		return
	}
	if c.opt.OnDeadLetter != nil {
		c.opt.OnDeadLetter(ctx, c.opt.Name, m, cause)
	}
}

// ReasonMaxReceive labels a message dead-lettered because it failed on
// every receive the queue allows.
const ReasonMaxReceive = "max_receive"

// ErrPanic wraps a handler panic, which is retried like any other failure.
var ErrPanic = errors.New("handler panicked")

func (c *Consumer) safeHandle(ctx context.Context, m sluice.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", ErrPanic, r, debug.Stack())
		}
	}()
	return c.h(ctx, m)
}
