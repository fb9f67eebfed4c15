package sluicetest

import (
	"context"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// QueueFactory returns a new, empty queue whose messages move to dlq after
// maxReceive receives (0: never), and that dead-letter queue.
type QueueFactory func(t *testing.T, maxReceive int) (q, dlq sluice.Queue)

// receiveN receives until n messages arrived or the deadline passed.
func receiveN(t *testing.T, q sluice.Queue, n int, vis time.Duration, within time.Duration) []sluice.Message {
	t.Helper()
	var out []sluice.Message
	deadline := time.Now().Add(within)
	for len(out) < n && time.Now().Before(deadline) {
		ms, err := q.Receive(t.Context(), min(10, n-len(out)), vis, time.Second)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		out = append(out, ms...)
	}
	if len(out) < n {
		t.Fatalf("received %d messages within %v, want %d", len(out), within, n)
	}
	return out
}

func expectEmpty(t *testing.T, q sluice.Queue, what string) {
	t.Helper()
	ms, err := q.Receive(t.Context(), 10, 30*time.Second, 0)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(ms) > 0 {
		t.Fatalf("%s: got %d messages (first %q), want none", what, len(ms), ms[0].Body)
	}
}

func bodies(ms []sluice.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Body))
	}
	sort.Strings(out)
	return out
}

// TestQueue runs the Queue suite.
func TestQueue(t *testing.T, newQueue QueueFactory) {
	t.Run("CarriesTraceContext", func(t *testing.T) { testCarriesTrace(t, newQueue) })
	t.Run("TraceSurvivesDeadLetterAndRedrive", func(t *testing.T) { testTraceThroughDLQ(t, newQueue) })
	t.Run("SendReceiveDelete", func(t *testing.T) {
		q, _ := newQueue(t, 0)
		for _, b := range []string{"one", "two", `{"v":1,"x":"three"}`} {
			if err := q.Send(t.Context(), []byte(b)); err != nil {
				t.Fatalf("Send: %v", err)
			}
		}
		ms := receiveN(t, q, 3, 30*time.Second, 10*time.Second)
		if got := fmt.Sprint(bodies(ms)); got != `[one two {"v":1,"x":"three"}]` {
			t.Fatalf("bodies %s", got)
		}
		for _, m := range ms {
			if m.ReceiveCount != 1 {
				t.Errorf("first receive of %q has ReceiveCount %d", m.Body, m.ReceiveCount)
			}
			if m.ID == "" || m.Receipt == "" {
				t.Errorf("message without ID or receipt: %+v", m)
			}
			if err := q.Delete(t.Context(), m.Receipt); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}
		expectEmpty(t, q, "after deleting everything")
	})
	t.Run("RedeliveredAfterVisibilityTimeout", func(t *testing.T) {
		q, _ := newQueue(t, 0)
		if err := q.Send(t.Context(), []byte("again")); err != nil {
			t.Fatal(err)
		}
		first := receiveN(t, q, 1, time.Second, 10*time.Second)[0]
		expectEmpty(t, q, "while in flight")
		time.Sleep(1500 * time.Millisecond)
		second := receiveN(t, q, 1, 30*time.Second, 10*time.Second)[0]
		if string(second.Body) != "again" || second.ReceiveCount != 2 {
			t.Fatalf("redelivery: body %q count %d, want \"again\" 2", second.Body, second.ReceiveCount)
		}
		if second.ID != first.ID {
			t.Errorf("redelivered message has ID %q, first %q", second.ID, first.ID)
		}
		if err := q.Delete(t.Context(), second.Receipt); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ExtendKeepsItInvisible", func(t *testing.T) {
		q, _ := newQueue(t, 0)
		if err := q.Send(t.Context(), []byte("long work")); err != nil {
			t.Fatal(err)
		}
		m := receiveN(t, q, 1, time.Second, 10*time.Second)[0]
		if err := q.Extend(t.Context(), m.Receipt, 4*time.Second); err != nil {
			t.Fatalf("Extend: %v", err)
		}
		time.Sleep(1500 * time.Millisecond)
		expectEmpty(t, q, "after the heartbeat, past the first timeout")
		if err := q.Extend(t.Context(), m.Receipt, 0); err != nil {
			t.Fatalf("Extend(0): %v", err)
		}
		back := receiveN(t, q, 1, 30*time.Second, 10*time.Second)[0]
		if string(back.Body) != "long work" {
			t.Fatalf("got %q", back.Body)
		}
		if err := q.Delete(t.Context(), back.Receipt); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("SendBatchMany", func(t *testing.T) {
		q, _ := newQueue(t, 0)
		var bs [][]byte
		for i := range 25 {
			bs = append(bs, []byte(fmt.Sprintf("m%02d", i)))
		}
		if err := q.SendBatch(t.Context(), bs); err != nil {
			t.Fatalf("SendBatch: %v", err)
		}
		ms := receiveN(t, q, 25, 30*time.Second, 20*time.Second)
		seen := map[string]bool{}
		for _, m := range ms {
			if seen[string(m.Body)] {
				t.Fatalf("%q received twice", m.Body)
			}
			seen[string(m.Body)] = true
			if err := q.Delete(t.Context(), m.Receipt); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("DeadLetterNow", func(t *testing.T) {
		q, dlq := newQueue(t, 5)
		if err := q.Send(t.Context(), []byte("poison")); err != nil {
			t.Fatal(err)
		}
		m := receiveN(t, q, 1, 30*time.Second, 10*time.Second)[0]
		if err := q.DeadLetter(t.Context(), m, "malformed message: test"); err != nil {
			t.Fatalf("DeadLetter: %v", err)
		}
		dead := receiveN(t, dlq, 1, 30*time.Second, 10*time.Second)[0]
		if string(dead.Body) != "poison" {
			t.Fatalf("dead-letter queue holds %q", dead.Body)
		}
		if err := dlq.Delete(t.Context(), dead.Receipt); err != nil {
			t.Fatal(err)
		}
		expectEmpty(t, q, "source queue after dead-lettering")
	})
	t.Run("RedriveAfterMaxReceive", func(t *testing.T) {
		const maxReceive = 2
		q, dlq := newQueue(t, maxReceive)
		if err := q.Send(t.Context(), []byte("never acked")); err != nil {
			t.Fatal(err)
		}
		receives := 0
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			ms, err := q.Receive(t.Context(), 1, time.Second, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			receives += len(ms)
			if d, err := dlq.Receive(t.Context(), 1, 30*time.Second, 0); err != nil {
				t.Fatal(err)
			} else if len(d) == 1 {
				if string(d[0].Body) != "never acked" {
					t.Fatalf("dead-letter queue holds %q", d[0].Body)
				}
				if receives != maxReceive {
					t.Fatalf("received %d times before the redrive, want %d", receives, maxReceive)
				}
				// Back into view, then the operator's look must say why it is there.
				if err := dlq.Extend(t.Context(), d[0].Receipt, 0); err != nil {
					t.Fatal(err)
				}
				dead := peekDead(t, q, 10, 1)
				if dead[0].Reason == "" || string(dead[0].Body) != "never acked" {
					t.Fatalf("PeekDead after the max receive count = %+v, want the body and a reason", dead[0])
				}
				return
			}
		}
		t.Fatalf("message never reached the dead-letter queue (received %d times)", receives)
	})
	t.Run("PeekDeadAndRedrive", func(t *testing.T) { testPeekDeadAndRedrive(t, newQueue) })
	t.Run("RedriveEndsWhileConsumersKeepFailing", func(t *testing.T) { testRedriveEnds(t, newQueue) })
	t.Run("Depth", func(t *testing.T) {
		q, _ := newQueue(t, 0)
		if err := q.SendBatch(t.Context(), [][]byte{[]byte("a"), []byte("b")}); err != nil {
			t.Fatal(err)
		}
		d, err := q.Depth(t.Context())
		if err != nil {
			t.Fatalf("Depth: %v", err)
		}
		if d.Visible != 2 || d.InFlight != 0 {
			t.Fatalf("depth after two sends = %+v", d)
		}
		m := receiveN(t, q, 1, 30*time.Second, 10*time.Second)[0]
		d, _ = q.Depth(t.Context())
		// As SQS counts: what is received is in flight, not visible.
		// (pkg/awstest corrects local-aws-sqs, which counts it as both.)
		if d.Visible != 1 || d.InFlight != 1 {
			t.Fatalf("depth with one in flight = %+v", d)
		}
		q.Delete(t.Context(), m.Receipt)
		rest := receiveN(t, q, 1, 30*time.Second, 10*time.Second)
		q.Delete(t.Context(), rest[0].Receipt)
		d, _ = q.Depth(t.Context())
		if d.Visible != 0 || d.InFlight != 0 {
			t.Fatalf("depth after deleting all = %+v", d)
		}
	})
	t.Run("ConcurrentReceiversNeverShare", func(t *testing.T) {
		q, _ := newQueue(t, 0)
		const n = 30
		var bs [][]byte
		for i := range n {
			bs = append(bs, []byte(fmt.Sprint(i)))
		}
		if err := q.SendBatch(t.Context(), bs); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		deadline := time.Now().Add(20 * time.Second)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					mu.Lock()
					done := len(got) == n
					mu.Unlock()
					if done {
						return
					}
					ms, err := q.Receive(t.Context(), 3, 60*time.Second, 500*time.Millisecond)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, m := range ms {
						got[string(m.Body)]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(got) != n {
			t.Fatalf("received %d distinct messages, want %d", len(got), n)
		}
		for b, c := range got {
			if c != 1 {
				t.Errorf("message %s received %d times while invisible", b, c)
			}
		}
	})
}

// peekDead peeks until want messages show (a dead letter may take a moment
// to arrive on SQS) and fails if more or fewer do.
func peekDead(t *testing.T, q sluice.Queue, n, want int) []sluice.DeadMessage {
	t.Helper()
	var dead []sluice.DeadMessage
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if dead, err = q.PeekDead(t.Context(), n); err != nil {
			t.Fatalf("PeekDead: %v", err)
		}
		if len(dead) >= want {
			break
		}
	}
	if len(dead) != want {
		t.Fatalf("PeekDead(%d) = %d messages, want %d", n, len(dead), want)
	}
	return dead
}

func testPeekDeadAndRedrive(t *testing.T, newQueue QueueFactory) {
	q, _ := newQueue(t, 5)
	if dead, err := q.PeekDead(t.Context(), 10); err != nil || len(dead) != 0 {
		t.Fatalf("PeekDead on an empty dead-letter queue = %+v, %v", dead, err)
	}
	if n, err := q.Redrive(t.Context()); err != nil || n != 0 {
		t.Fatalf("Redrive of an empty dead-letter queue = %d, %v", n, err)
	}
	if err := q.SendBatch(t.Context(), [][]byte{[]byte("{not json"), []byte(`{"v":99}`), []byte("fine")}); err != nil {
		t.Fatal(err)
	}
	for _, m := range receiveN(t, q, 3, 30*time.Second, 10*time.Second) {
		if string(m.Body) == "fine" {
			q.Delete(t.Context(), m.Receipt)
			continue
		}
		if err := q.DeadLetter(t.Context(), m, "malformed: "+string(m.Body)); err != nil {
			t.Fatalf("DeadLetter: %v", err)
		}
	}
	dead := peekDead(t, q, 10, 2)
	for _, d := range dead {
		if d.Reason != "malformed: "+string(d.Body) || d.ID == "" {
			t.Errorf("dead message %q: ID %q reason %q", d.Body, d.ID, d.Reason)
		}
	}
	// A peek takes nothing: a second one, and a smaller one, see the same.
	peekDead(t, q, 10, 2)
	peekDead(t, q, 1, 1)
	// Redrive right after the peeks must find both: a peek that left them
	// hidden would make an operator's "list, then redrive" move nothing.
	n, err := q.Redrive(t.Context())
	if err != nil || n != 2 {
		t.Fatalf("Redrive after PeekDead = %d, %v; want 2", n, err)
	}
	back := receiveN(t, q, 2, 30*time.Second, 10*time.Second)
	if got := fmt.Sprint(bodies(back)); got != `[{"v":99} {not json]` {
		t.Fatalf("redriven bodies %s", got)
	}
	for _, m := range back {
		if m.ReceiveCount != 1 {
			t.Errorf("redriven %q has ReceiveCount %d, want 1 (a fresh message)", m.Body, m.ReceiveCount)
		}
		q.Delete(t.Context(), m.Receipt)
	}
	if dead, err := q.PeekDead(t.Context(), 10); err != nil || len(dead) != 0 {
		t.Fatalf("PeekDead after Redrive = %d messages, %v", len(dead), err)
	}
}

// testRedriveEnds: an operator redrives poison messages while the stage
// still fails on them, so they come straight back. Redrive must move what
// was there, once, and return, not chase them for ever.
func testRedriveEnds(t *testing.T, newQueue QueueFactory) {
	q, _ := newQueue(t, 5)
	const n = 20
	var bs [][]byte
	for i := range n {
		bs = append(bs, []byte(fmt.Sprintf("poison %d", i)))
	}
	if err := q.SendBatch(t.Context(), bs); err != nil {
		t.Fatal(err)
	}
	for _, m := range receiveN(t, q, n, 30*time.Second, 20*time.Second) {
		if err := q.DeadLetter(t.Context(), m, "first failure"); err != nil {
			t.Fatal(err)
		}
	}
	peekDead(t, q, n+10, n)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { // the stage, still failing on every message at once
			defer wg.Done()
			for ctx.Err() == nil {
				ms, _ := q.Receive(ctx, 10, 30*time.Second, 100*time.Millisecond)
				for _, m := range ms {
					q.DeadLetter(ctx, m, "still failing")
				}
			}
		}()
	}
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() { n, err := q.Redrive(ctx); done <- result{n, err} }()
	select {
	case r := <-done:
		cancel()
		wg.Wait()
		// Exactly those that were there: one that came back during the
		// redrive is a new failure, for the next look.
		if r.err != nil || r.n != n {
			t.Fatalf("Redrive = %d, %v; want the %d that were there when it began", r.n, r.err, n)
		}
	case <-time.After(30 * time.Second):
		cancel()
		wg.Wait()
		t.Fatal("Redrive still running after 30s while consumers kept failing the messages")
	}
}

// testCarriesTrace checks that the sender's trace context comes back with
// each message sent in a traced context (Send and SendBatch), and that a
// message sent without one carries none.
func testCarriesTrace(t *testing.T, newQueue QueueFactory) {
	q, _ := newQueue(t, 0)
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:  trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled,
	})
	traced := trace.ContextWithSpanContext(t.Context(), sc)
	if err := q.Send(traced, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := q.SendBatch(traced, [][]byte{[]byte("b"), []byte("c")}); err != nil {
		t.Fatal(err)
	}
	if err := q.Send(t.Context(), []byte("d")); err != nil {
		t.Fatal(err)
	}
	want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
	for _, m := range receiveN(t, q, 4, 30*time.Second, 10*time.Second) {
		exp := want
		if string(m.Body) == "d" {
			exp = ""
		}
		if m.Trace != exp {
			t.Errorf("message %q carries trace %q, want %q", m.Body, m.Trace, exp)
		}
	}
}

// spanCtx is a context carrying a remote span context with the given
// trace ID's first byte and span ID's first byte, and its traceparent.
func spanCtx(ctx context.Context, traceByte, spanByte byte) (context.Context, string) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{traceByte, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:  trace.SpanID{spanByte, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled,
	})
	return trace.ContextWithSpanContext(ctx, sc), "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
}

// testTraceThroughDLQ: a message keeps the trace context it was sent with
// through both ways into the dead-letter queue (DeadLetter, and the max
// receive count) and back out with Redrive, even when those calls run in
// another trace's context (an operator's redrive, the consumer's span).
func testTraceThroughDLQ(t *testing.T, newQueue QueueFactory) {
	const maxReceive = 1
	q, dlq := newQueue(t, maxReceive)
	ctxA, tpA := spanCtx(t.Context(), 0xa, 1)
	ctxB, tpB := spanCtx(t.Context(), 0xb, 1)
	other, _ := spanCtx(t.Context(), 0xc, 9)
	if err := q.Send(ctxA, []byte("dead-lettered")); err != nil {
		t.Fatal(err)
	}
	m := receiveN(t, q, 1, 30*time.Second, 10*time.Second)[0]
	if err := q.DeadLetter(other, m, "test: cannot succeed"); err != nil {
		t.Fatal(err)
	}
	if err := q.SendBatch(ctxB, [][]byte{[]byte("max receive")}); err != nil {
		t.Fatal(err)
	}
	// One receive without an acknowledgement; the next receive, after the
	// visibility timeout, moves it (SQS: the redrive policy).
	receiveN(t, q, 1, time.Second, 10*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for len(peekDeadQuiet(t, q)) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the unacknowledged message never reached the dead-letter queue")
		}
		if _, err := q.Receive(t.Context(), 1, time.Second, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	dead := receiveN(t, dlq, 2, 30*time.Second, 10*time.Second)
	want := map[string]string{"dead-lettered": tpA, "max receive": tpB}
	for _, d := range dead {
		if d.Trace != want[string(d.Body)] {
			t.Errorf("in the dead-letter queue %q carries trace %q, want %q", d.Body, d.Trace, want[string(d.Body)])
		}
		if err := dlq.Extend(t.Context(), d.Receipt, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := q.Redrive(other); err != nil || n != 2 {
		t.Fatalf("Redrive = %d, %v; want 2 moved", n, err)
	}
	for _, r := range receiveN(t, q, 2, 30*time.Second, 10*time.Second) {
		if r.Trace != want[string(r.Body)] {
			t.Errorf("redriven %q carries trace %q, want %q", r.Body, r.Trace, want[string(r.Body)])
		}
	}
}

// peekDeadQuiet is PeekDead that fails the test on error only.
func peekDeadQuiet(t *testing.T, q sluice.Queue) []sluice.DeadMessage {
	t.Helper()
	d, err := q.PeekDead(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
