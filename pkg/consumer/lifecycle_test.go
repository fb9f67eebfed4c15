package consumer_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/consumer"
	"github.com/sluicehq/sluice/pkg/sluice"
)

type deadNote struct {
	stage, body, cause string
}

type deadLog struct {
	mu    sync.Mutex
	notes []deadNote
}

func (d *deadLog) hook(_ context.Context, stage string, m sluice.Message, cause error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.notes = append(d.notes, deadNote{stage, string(m.Body), cause.Error()})
}

func (d *deadLog) get() []deadNote {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]deadNote(nil), d.notes...)
}

// TestDeadLetterHookHearsEveryDeadMessage: a message that fails on its last
// allowed receive, and one that can never succeed, both reach the hook with
// their cause, so the pipeline can fail their batch instead of stalling.
func TestDeadLetterHookHearsEveryDeadMessage(t *testing.T) {
	q := queue(t) // max receive 3
	q.Send(t.Context(), []byte("always-fails"))
	q.Send(t.Context(), []byte("poison"))
	dl := &deadLog{}
	stop := start(t, q, func(ctx context.Context, m sluice.Message) error {
		if string(m.Body) == "poison" {
			return sluice.PermanentReason(sluice.ReasonMalformed, errors.New("not JSON"))
		}
		return errors.New("the reference has no column unitCost")
	}, consumer.Options{Name: "process", Visibility: 10 * time.Second, Wait: 100 * time.Millisecond,
		Backoff: func(int) time.Duration { return 0 }, MaxReceive: 3, OnDeadLetter: dl.hook})
	defer stop()
	until(t, "two dead-letter notes", func() bool { return len(dl.get()) == 2 })
	byBody := map[string]deadNote{}
	for _, n := range dl.get() {
		byBody[n.body] = n
	}
	if n := byBody["always-fails"]; n.stage != "process" || !strings.Contains(n.cause, "3 tries") || !strings.Contains(n.cause, "no column unitCost") {
		t.Errorf("last-try note = %+v", n)
	}
	if n := byBody["poison"]; !strings.Contains(n.cause, "not JSON") {
		t.Errorf("permanent note = %+v", n)
	}
	dead, err := q.PeekDead(t.Context(), 10)
	if err != nil || len(dead) != 2 {
		t.Fatalf("dlq holds %d (%v), want 2", len(dead), err)
	}
	for _, m := range dead {
		if string(m.Body) == "always-fails" && !strings.Contains(m.Reason, "no column unitCost") {
			t.Errorf("dlq reason %q does not say why", m.Reason)
		}
	}
}

// TestFatalErrorStopsRunWithinDrain: a full disk is not retried forever
// with a growing backoff: Run returns the error at once, and the message
// stays in the queue (not dead-lettered) for the next run.
func TestFatalErrorStopsRunWithinDrain(t *testing.T) {
	q := queue(t)
	q.Send(t.Context(), []byte("chunk"))
	dl := &deadLog{}
	c := consumer.New(q, func(ctx context.Context, m sluice.Message) error {
		return &pathErr{syscall.ENOSPC}
	}, consumer.Options{Visibility: time.Minute, Wait: 100 * time.Millisecond, MaxReceive: 3, OnDeadLetter: dl.hook,
		Fatal: func(err error) bool { return errors.Is(err, syscall.ENOSPC) }})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := c.Run(ctx)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Run = %v, want the ENOSPC error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Run took %v to stop", d)
	}
	if len(dl.get()) != 0 {
		t.Fatalf("a full disk dead-lettered the message: %+v", dl.get())
	}
	depth, err := q.Depth(t.Context())
	if err != nil || depth.Visible+depth.InFlight+depth.Delayed != 1 {
		t.Fatalf("queue depth %+v (%v): the message must stay for the next run", depth, err)
	}
}

type pathErr struct{ err error }

func (p *pathErr) Error() string { return "write /data/bucket/x: " + p.err.Error() }
func (p *pathErr) Unwrap() error { return p.err }
