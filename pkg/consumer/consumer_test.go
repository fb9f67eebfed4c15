package consumer_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/consumer"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

func queue(t *testing.T) *sqlite.Queue {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db.Queue("work", sqlite.QueueOptions{MaxReceive: 3})
}

type obs struct {
	mu       sync.Mutex
	outcomes map[consumer.Outcome]int
	reasons  []string
}

func (o *obs) Received(string, int) {}
func (o *obs) Handled(_ string, out consumer.Outcome, reason string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.outcomes == nil {
		o.outcomes = map[consumer.Outcome]int{}
	}
	o.outcomes[out]++
	if reason != "" {
		o.reasons = append(o.reasons, reason)
	}
}

func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func start(t *testing.T, q sluice.Queue, h consumer.Handler, o consumer.Options) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { consumer.New(q, h, o).Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func TestSuccessRetryAndDeadLetter(t *testing.T) {
	q := queue(t)
	for _, b := range []string{"ok", "flaky", "poison"} {
		q.Send(t.Context(), []byte(b))
	}
	var flaky atomic.Int32
	o := &obs{}
	stop := start(t, q, func(ctx context.Context, m sluice.Message) error {
		switch string(m.Body) {
		case "flaky":
			if flaky.Add(1) < 3 {
				return errors.New("dependency down")
			}
		case "poison":
			return sluice.PermanentReason(sluice.ReasonMalformed, errors.New("not JSON"))
		}
		return nil
	}, consumer.Options{Concurrency: 2, Visibility: 10 * time.Second, Wait: 100 * time.Millisecond, Observer: o,
		Backoff: func(n int) time.Duration { return time.Duration(n) * 50 * time.Millisecond }})
	defer stop()
	until(t, "all three settled", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.outcomes[consumer.Succeeded] == 2 && o.outcomes[consumer.DeadLettered] == 1
	})
	if got := flaky.Load(); got != 3 {
		t.Fatalf("flaky handled %d times, want 3 (two retries)", got)
	}
	if o.outcomes[consumer.Retried] != 2 || len(o.reasons) != 1 || o.reasons[0] != sluice.ReasonMalformed {
		t.Fatalf("outcomes %v reasons %v", o.outcomes, o.reasons)
	}
	dead, _ := q.PeekDead(t.Context(), 10)
	if len(dead) != 1 || string(dead[0].Body) != "poison" || dead[0].Reason == "" {
		t.Fatalf("dead-letter queue: %+v", dead)
	}
}

func TestRetryIsDelayedNotImmediate(t *testing.T) {
	q := queue(t)
	q.Send(t.Context(), []byte("x"))
	var mu sync.Mutex
	var at []time.Time
	stop := start(t, q, func(ctx context.Context, m sluice.Message) error {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		return errors.New("down")
	}, consumer.Options{Visibility: 10 * time.Second, Wait: 50 * time.Millisecond, Backoff: func(int) time.Duration { return 400 * time.Millisecond }})
	defer stop()
	until(t, "two attempts", func() bool { mu.Lock(); defer mu.Unlock(); return len(at) >= 2 })
	if gap := at[1].Sub(at[0]); gap < 350*time.Millisecond {
		t.Fatalf("retried after %v, want the 400ms backoff", gap)
	}
}

func TestHeartbeatKeepsLongWorkInvisible(t *testing.T) {
	q := queue(t)
	q.Send(t.Context(), []byte("long"))
	var runs atomic.Int32
	stop := start(t, q, func(ctx context.Context, m sluice.Message) error {
		runs.Add(1)
		time.Sleep(2500 * time.Millisecond) // longer than the 1s visibility
		return nil
	}, consumer.Options{Concurrency: 2, Visibility: time.Second, Heartbeat: 300 * time.Millisecond, Wait: 50 * time.Millisecond})
	defer stop()
	until(t, "the work to finish", func() bool {
		d, _ := q.Depth(t.Context())
		return runs.Load() == 1 && d.Visible+d.InFlight == 0
	})
	if n := runs.Load(); n != 1 {
		t.Fatalf("handled %d times; the heartbeat should have kept it from a second consumer", n)
	}
}

func TestShutdownFinishesInFlightWork(t *testing.T) {
	q := queue(t)
	q.Send(t.Context(), []byte("a"))
	started := make(chan struct{})
	var finished atomic.Bool
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		consumer.New(q, func(hctx context.Context, m sluice.Message) error {
			close(started)
			time.Sleep(300 * time.Millisecond)
			if hctx.Err() != nil {
				return hctx.Err()
			}
			finished.Store(true)
			return nil
		}, consumer.Options{Visibility: 30 * time.Second, Wait: 50 * time.Millisecond, Drain: 5 * time.Second}).Run(ctx)
		close(done)
	}()
	<-started
	cancel() // SIGTERM
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("consumer did not stop")
	}
	if !finished.Load() {
		t.Fatal("in-flight work was cut short")
	}
	if d, _ := q.Depth(t.Context()); d.Visible+d.InFlight != 0 {
		t.Fatalf("the finished message was not deleted: %+v", d)
	}
}

func TestDrainDeadlineReleasesWork(t *testing.T) {
	q := queue(t)
	q.Send(t.Context(), []byte("stuck"))
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		consumer.New(q, func(hctx context.Context, m sluice.Message) error {
			close(started)
			<-hctx.Done() // never finishes on its own
			return hctx.Err()
		}, consumer.Options{Visibility: 30 * time.Second, Wait: 50 * time.Millisecond, Drain: 300 * time.Millisecond}).Run(ctx)
		close(done)
	}()
	<-started
	t0 := time.Now()
	cancel()
	<-done
	if el := time.Since(t0); el > 3*time.Second {
		t.Fatalf("stop took %v with a 300ms drain", el)
	}
	// Released at once for another consumer, not after the 30s timeout.
	ms, _ := q.Receive(t.Context(), 1, time.Minute, time.Second)
	if len(ms) != 1 {
		t.Fatal("the cancelled message was not released")
	}
}

func TestPanicIsRetried(t *testing.T) {
	q := queue(t)
	q.Send(t.Context(), []byte("boom"))
	var n atomic.Int32
	stop := start(t, q, func(ctx context.Context, m sluice.Message) error {
		if n.Add(1) == 1 {
			panic("bug")
		}
		return nil
	}, consumer.Options{Visibility: 10 * time.Second, Wait: 50 * time.Millisecond, Backoff: func(int) time.Duration { return 10 * time.Millisecond }})
	defer stop()
	until(t, "the retry after the panic", func() bool { return n.Load() == 2 })
}

func TestDefaultBackoffGrowsAndCaps(t *testing.T) {
	prev := time.Duration(0)
	for i := 1; i < 20; i++ {
		d := consumer.DefaultBackoff(i)
		if d < prev || d > 5*time.Minute {
			t.Fatalf("backoff(%d) = %v after %v", i, d, prev)
		}
		prev = d
	}
	if consumer.DefaultBackoff(1) != time.Second || consumer.DefaultBackoff(30) != 5*time.Minute {
		t.Fatal("backoff endpoints")
	}
}
