package sluicetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

func newBatch(id string, created time.Time) sluice.Batch {
	return sluice.Batch{ID: id, Bucket: "bkt", Key: "input/" + id + ".csv", Name: id + ".csv", Size: 10, ETag: "e", Sequence: "1", CreatedAt: created}
}

func mustCreate(t *testing.T, l sluice.Ledger, b sluice.Batch) sluice.Batch {
	t.Helper()
	got, created, err := l.CreateBatch(t.Context(), b)
	if err != nil || !created {
		t.Fatalf("CreateBatch(%s) = created %v, %v", b.ID, created, err)
	}
	return got
}

// TestLedger runs the Ledger suite. newLedger returns an empty ledger.
func TestLedger(t *testing.T, newLedger func(t *testing.T) sluice.Ledger) {
	t.Run("CreateIsIdempotent", func(t *testing.T) {
		l := newLedger(t)
		b := mustCreate(t, l, newBatch("b1", time.Now()))
		if b.State != sluice.StateSplitting || b.TotalChunks != -1 {
			t.Fatalf("new batch state %q total %d, want splitting -1", b.State, b.TotalChunks)
		}
		again := newBatch("b1", time.Now())
		again.Name = "other.csv"
		got, created, err := l.CreateBatch(t.Context(), again)
		if err != nil || created || got.Name != "b1.csv" {
			t.Fatalf("second CreateBatch = %q, created %v, %v; want the first batch kept", got.Name, created, err)
		}
		if _, err := l.GetBatch(t.Context(), "missing"); !errors.Is(err, sluice.ErrNotFound) {
			t.Fatalf("GetBatch(missing): %v, want ErrNotFound", err)
		}
	})
	t.Run("KeepsPinnedReference", func(t *testing.T) {
		l := newLedger(t)
		b := newBatch("pinned", time.Now())
		b.RefVersion, b.ConfigDigest, b.Feed = "20260101T000000.000000Z-abc", "d1g3st", "returns"
		mustCreate(t, l, b)
		if _, err := l.UpdateBatch(t.Context(), b.ID, sluice.BatchUpdate{State: sluice.StateProcessing}); err != nil {
			t.Fatal(err)
		}
		got, err := l.GetBatch(t.Context(), b.ID)
		if err != nil || got.RefVersion != b.RefVersion || got.ConfigDigest != b.ConfigDigest || got.Feed != b.Feed {
			t.Fatalf("batch read back with reference %q, digest %q, feed %q (%v); want %q, %q, %q", got.RefVersion, got.ConfigDigest, got.Feed, err, b.RefVersion, b.ConfigDigest, b.Feed)
		}
	})
	t.Run("ChunkCountedOnce", func(t *testing.T) {
		l := newLedger(t)
		mustCreate(t, l, newBatch("b2", time.Now()))
		s := sluice.ChunkStats{Chunk: 3, RowsIn: 10, RowsOut: 8, RowsRejected: 2, Reasons: map[string]int{"pattern": 2}}
		c, err := l.ChunkDone(t.Context(), "b2", s)
		if err != nil || !c.Counted || c.Complete || c.Done != 1 {
			t.Fatalf("first ChunkDone = %+v, %v", c, err)
		}
		c, err = l.ChunkDone(t.Context(), "b2", s)
		if err != nil || c.Counted || c.Done != 1 {
			t.Fatalf("repeated ChunkDone = %+v, %v; want not counted, done 1", c, err)
		}
		b, _ := l.GetBatch(t.Context(), "b2")
		if b.DoneChunks != 1 || b.RowsOut != 8 || b.RowsRejected != 2 || b.Reasons["pattern"] != 2 {
			t.Fatalf("batch after a repeated chunk: done %d out %d rejected %d reasons %v", b.DoneChunks, b.RowsOut, b.RowsRejected, b.Reasons)
		}
	})
	t.Run("ChunkCountedReadsTheCounter", func(t *testing.T) {
		l := newLedger(t)
		cc, ok := l.(sluice.ChunkChecker)
		if !ok {
			t.Skip("this ledger does not implement sluice.ChunkChecker")
		}
		mustCreate(t, l, newBatch("bc", time.Now()))
		for _, chunk := range []int{0, 9, 300, 2050} { // spread over the shards of a sharded counter
			if got, err := cc.ChunkCounted(t.Context(), "bc", chunk); err != nil || got {
				t.Fatalf("chunk %d before ChunkDone: counted %v, %v", chunk, got, err)
			}
			if _, err := l.ChunkDone(t.Context(), "bc", sluice.ChunkStats{Chunk: chunk, RowsIn: 1, RowsOut: 1}); err != nil {
				t.Fatal(err)
			}
			if got, err := cc.ChunkCounted(t.Context(), "bc", chunk); err != nil || !got {
				t.Fatalf("chunk %d after ChunkDone: counted %v, %v", chunk, got, err)
			}
		}
		if got, err := cc.ChunkCounted(t.Context(), "bc", 1); err != nil || got {
			t.Fatalf("chunk 1, never done: counted %v, %v", got, err)
		}
		if got, err := cc.ChunkCounted(t.Context(), "other", 0); err != nil || got {
			t.Fatalf("chunk 0 of another batch: counted %v, %v", got, err)
		}
	})
	t.Run("CompletedExactlyOnce", func(t *testing.T) {
		for _, totalFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("totalFirst=%v", totalFirst), func(t *testing.T) {
				l := newLedger(t)
				mustCreate(t, l, newBatch("b3", time.Now()))
				const n = 40
				var mu sync.Mutex
				completed := 0
				note := func(c sluice.Completion, err error) {
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if c.Completed {
						completed++
					}
					mu.Unlock()
				}
				if totalFirst {
					note(l.SetTotal(t.Context(), "b3", n, n*10))
				}
				var wg sync.WaitGroup
				for i := range n {
					for range 2 { // every chunk reported twice, as redelivery does
						wg.Add(1)
						go func() {
							defer wg.Done()
							note(l.ChunkDone(t.Context(), "b3", sluice.ChunkStats{Chunk: i, RowsIn: 10, RowsOut: 10}))
						}()
					}
				}
				if !totalFirst {
					wg.Add(1)
					go func() { defer wg.Done(); note(l.SetTotal(t.Context(), "b3", n, n*10)) }()
				}
				wg.Wait()
				if completed != 1 {
					t.Fatalf("%d calls saw Completed, want exactly 1", completed)
				}
				b, _ := l.GetBatch(t.Context(), "b3")
				if b.DoneChunks != n || b.TotalChunks != n || b.RowsOut != n*10 || b.RowsIn != n*10 {
					t.Fatalf("batch: done %d total %d out %d in %d", b.DoneChunks, b.TotalChunks, b.RowsOut, b.RowsIn)
				}
				c, err := l.ChunkDone(t.Context(), "b3", sluice.ChunkStats{Chunk: 0})
				if err != nil || c.Counted || !c.Complete || c.Completed {
					t.Fatalf("late repeat = %+v, %v; want complete, not counted, not completed", c, err)
				}
			})
		}
	})
	t.Run("ScanRangesCountedOnce", func(t *testing.T) {
		l := newLedger(t)
		mustCreate(t, l, newBatch("s1", time.Now()))
		const n = 12
		var mu sync.Mutex
		completed, counted := 0, 0
		var wg sync.WaitGroup
		for r := range n {
			for range 3 { // every range reported three times, as redelivery does
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := l.ScanRangeDone(t.Context(), "s1", r, n)
					if err != nil {
						t.Error(err)
						return
					}
					if c.Total != n || c.Done < 1 || c.Done > n || c.Complete != (c.Done == n) {
						t.Errorf("ScanRangeDone(%d) = %+v", r, c)
					}
					mu.Lock()
					defer mu.Unlock()
					if c.Completed {
						completed++
					}
					if c.Counted {
						counted++
					}
				}()
			}
		}
		wg.Wait()
		if completed != 1 || counted != n {
			t.Fatalf("%d calls saw Completed and %d counted a range, want 1 and %d", completed, counted, n)
		}
		c, err := l.ScanRangeDone(t.Context(), "s1", 0, n)
		if err != nil || c.Counted || !c.Complete || c.Completed || c.Done != n {
			t.Fatalf("late repeat = %+v, %v; want complete, not counted, not completed", c, err)
		}
		b, err := l.GetBatch(t.Context(), "s1")
		if err != nil || b.DoneChunks != 0 || b.State != sluice.StateSplitting {
			t.Fatalf("the scan count touched the batch's chunks or state: %+v, %v", b, err)
		}
		if _, err := l.ScanRangeDone(t.Context(), "missing", 0, 1); !errors.Is(err, sluice.ErrNotFound) {
			t.Fatalf("ScanRangeDone(missing batch): %v, want ErrNotFound", err)
		}
	})
	t.Run("CrashBetweenCounterWrites", func(t *testing.T) { testCrashBetweenWrites(t, newLedger) })
	t.Run("ConcurrentAcrossShards", func(t *testing.T) { testConcurrentAcrossShards(t, newLedger) })
	t.Run("ExactWhileRunning", func(t *testing.T) { testExactWhileRunning(t, newLedger) })
	t.Run("ZeroChunks", func(t *testing.T) {
		l := newLedger(t)
		mustCreate(t, l, newBatch("b4", time.Now()))
		c, err := l.SetTotal(t.Context(), "b4", 0, 0)
		if err != nil || !c.Completed || !c.Complete {
			t.Fatalf("SetTotal(0) = %+v, %v; want completed", c, err)
		}
	})
	t.Run("UpdateAndList", func(t *testing.T) {
		l := newLedger(t)
		base := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
		for i, id := range []string{"old", "mid", "new"} {
			mustCreate(t, l, newBatch(id, base.Add(time.Duration(i)*time.Minute)))
		}
		merged := time.Now().UTC().Truncate(time.Millisecond)
		b, err := l.UpdateBatch(t.Context(), "mid", sluice.BatchUpdate{State: sluice.StateFailed, Reason: "the file is empty", Header: []string{"a", "b"}, MergedAt: merged})
		if err != nil || b.State != sluice.StateFailed || b.Reason != "the file is empty" {
			t.Fatalf("UpdateBatch = %+v, %v", b, err)
		}
		b, _ = l.GetBatch(t.Context(), "mid")
		if b.State != sluice.StateFailed || fmt.Sprint(b.Header) != "[a b]" || !b.MergedAt.Equal(merged) || b.Name != "mid.csv" {
			t.Fatalf("stored batch: state %q header %v merged %v name %q", b.State, b.Header, b.MergedAt, b.Name)
		}
		b, err = l.UpdateBatch(t.Context(), "mid", sluice.BatchUpdate{State: sluice.StateCompleted, OnlyIfNotTerminal: true})
		if err != nil || b.State != sluice.StateFailed {
			t.Fatalf("update of a terminal batch: state %q, %v; want it left failed", b.State, err)
		}
		// States only move forward.
		mustCreate(t, l, newBatch("fwd", base.Add(-time.Minute)))
		for _, st := range []sluice.State{sluice.StateMerging, sluice.StateProcessing, sluice.StateSplitting} {
			if _, err := l.UpdateBatch(t.Context(), "fwd", sluice.BatchUpdate{State: st}); err != nil {
				t.Fatal(err)
			}
		}
		if b, _ := l.GetBatch(t.Context(), "fwd"); b.State != sluice.StateMerging {
			t.Fatalf("state moved back to %q", b.State)
		}
		if b, _ := l.UpdateBatch(t.Context(), "fwd", sluice.BatchUpdate{State: sluice.StateCompleted, EmailID: "m1"}); b.State != sluice.StateCompleted || b.EmailID != "m1" {
			t.Fatalf("completing: %q %q", b.State, b.EmailID)
		}
		if b, _ := l.UpdateBatch(t.Context(), "fwd", sluice.BatchUpdate{State: sluice.StateFailed, Reason: "late"}); b.State != sluice.StateCompleted {
			t.Fatalf("a completed batch moved to %q", b.State)
		}
		all, err := l.ListBatches(t.Context(), sluice.BatchFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, b := range all {
			ids = append(ids, b.ID)
		}
		if fmt.Sprint(ids) != "[new mid old fwd]" {
			t.Fatalf("ListBatches = %v, want newest first", ids)
		}
		failed, _ := l.ListBatches(t.Context(), sluice.BatchFilter{State: sluice.StateFailed})
		if len(failed) != 1 || failed[0].ID != "mid" {
			t.Fatalf("ListBatches(failed) = %v", failed)
		}
		one, _ := l.ListBatches(t.Context(), sluice.BatchFilter{Limit: 1})
		if len(one) != 1 || one[0].ID != "new" {
			t.Fatalf("ListBatches(limit 1) = %v", one)
		}
		byKey, _ := l.ListBatches(t.Context(), sluice.BatchFilter{Key: "input/old.csv"})
		if len(byKey) != 1 || byKey[0].ID != "old" {
			t.Fatalf("ListBatches(key) = %v", byKey)
		}
	})
	t.Run("Rejects", func(t *testing.T) {
		l := newLedger(t)
		mustCreate(t, l, newBatch("b5", time.Now()))
		var rows []sluice.RowError
		for i := range 250 {
			rows = append(rows, sluice.RowError{Chunk: i / 100, Line: int64(i*2 + 2), Column: "uuid", Rule: "pattern", Message: "bad", Raw: fmt.Sprintf("x%d,\"q\"\"uote\"", i)})
		}
		if err := l.AddRejects(t.Context(), "b5", rows[:200]); err != nil {
			t.Fatal(err)
		}
		if err := l.AddRejects(t.Context(), "b5", rows[100:]); err != nil { // overlaps: a redelivered chunk
			t.Fatal(err)
		}
		var got []sluice.RowError
		after := int64(0)
		for {
			page, err := l.Rejects(t.Context(), "b5", after, 60)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].Line
		}
		if len(got) != 250 {
			t.Fatalf("%d rejected rows stored, want 250", len(got))
		}
		for i, r := range got {
			if r.Line != rows[i].Line || r.Raw != rows[i].Raw || r.Rule != "pattern" || r.Column != "uuid" || r.Chunk != rows[i].Chunk {
				t.Fatalf("row %d = %+v, want %+v", i, r, rows[i])
			}
		}
	})
	t.Run("RejectsRepeatedAndOutOfOrder", func(t *testing.T) { testRejectsRepeated(t, newLedger(t)) })
	t.Run("CountByState", func(t *testing.T) {
		l := newLedger(t)
		want := func(step string, w map[sluice.State]int) {
			t.Helper()
			got, err := l.CountByState(t.Context())
			if err != nil {
				t.Fatalf("%s: CountByState: %v", step, err)
			}
			for st, n := range got {
				if n == 0 {
					delete(got, st)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(w) {
				t.Fatalf("%s: CountByState = %v, want %v", step, got, w)
			}
		}
		want("empty", map[sluice.State]int{})
		base := time.Now()
		for i := range 6 {
			mustCreate(t, l, newBatch(fmt.Sprintf("c%d", i), base.Add(time.Duration(i)*time.Second)))
		}
		l.CreateBatch(t.Context(), newBatch("c0", base)) // not created again
		want("created", map[sluice.State]int{sluice.StateSplitting: 6})
		// Concurrent moves, repeated and refused ones included: each
		// batch is counted in exactly one state.
		var wg sync.WaitGroup
		for i := range 6 {
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := fmt.Sprintf("c%d", i)
					moves := []sluice.BatchUpdate{{State: sluice.StateProcessing}, {State: sluice.StateMerging}}
					switch i % 3 {
					case 1:
						moves = append(moves, sluice.BatchUpdate{State: sluice.StateCompleted})
					case 2:
						moves = append(moves, sluice.BatchUpdate{State: sluice.StateFailed, Reason: "x"})
					}
					moves = append(moves, sluice.BatchUpdate{State: sluice.StateProcessing}) // backwards: refused
					for _, u := range moves {
						if _, err := l.UpdateBatch(t.Context(), id, u); err != nil {
							t.Error(err)
						}
					}
				}()
			}
		}
		wg.Wait()
		want("moved", map[sluice.State]int{sluice.StateMerging: 2, sluice.StateCompleted: 2, sluice.StateFailed: 2})
		if _, err := l.UpdateBatch(t.Context(), "c0", sluice.BatchUpdate{State: sluice.StateFailed}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.UpdateBatch(t.Context(), "c1", sluice.BatchUpdate{State: sluice.StateFailed}); err != nil { // terminal: stays
			t.Fatal(err)
		}
		want("failed one more", map[sluice.State]int{sluice.StateMerging: 1, sluice.StateCompleted: 2, sluice.StateFailed: 3})
		if bs, err := l.ListBatches(t.Context(), sluice.BatchFilter{}); err != nil || len(bs) != 6 {
			t.Fatalf("ListBatches: %d batches, %v; the counts must not show up as a batch", len(bs), err)
		}
	})
	t.Run("Deliveries", func(t *testing.T) { testDeliveries(t, newLedger(t)) })
}

// testDeliveries: a batch's sinks start pending, in order; an outcome is
// recorded once (a repeat changes nothing, so a crash between delivering
// and recording cannot count twice); a reset moves only a failed sink
// back unless forced; none of it touches the batch's state.
func testDeliveries(t *testing.T, l sluice.Ledger) {
	ctx := t.Context()
	mustCreate(t, l, newBatch("dl", time.Now()))
	if _, err := l.UpdateBatch(ctx, "dl", sluice.BatchUpdate{State: sluice.StateCompleted}); err != nil {
		t.Fatal(err)
	}
	sinks := []sluice.Delivery{{Sink: "zeta-hook", Type: "webhook"}, {Sink: "archive", Type: "s3"}, {Sink: "events.v1", Type: "sqs"}}
	got, err := l.InitDeliveries(ctx, "dl", sinks)
	if err != nil || len(got) != 3 || got[0].Sink != "zeta-hook" || got[1].Sink != "archive" || got[2].State != sluice.DeliveryPending || got[2].Type != "sqs" {
		t.Fatalf("InitDeliveries = %+v, %v; want three pending sinks in configuration order", got, err)
	}
	if again, err := l.InitDeliveries(ctx, "dl", sinks[:1]); err != nil || len(again) != 3 {
		t.Fatalf("a second InitDeliveries = %+v, %v; want the first list kept", again, err)
	}
	at := time.Date(2026, 11, 29, 4, 0, 0, 123456789, time.UTC)
	d, changed, err := l.RecordDelivery(ctx, "dl", sluice.Delivery{Sink: "zeta-hook", State: sluice.DeliveryDelivered, Attempts: 2, At: at})
	if err != nil || !changed || d.State != sluice.DeliveryDelivered || d.Attempts != 2 || !d.At.Equal(at) {
		t.Fatalf("RecordDelivery = %+v, changed %v, %v", d, changed, err)
	}
	d, changed, err = l.RecordDelivery(ctx, "dl", sluice.Delivery{Sink: "zeta-hook", State: sluice.DeliveryFailed, Reason: "late", Attempts: 1, At: at.Add(time.Hour)})
	if err != nil || changed || d.State != sluice.DeliveryDelivered || d.Attempts != 2 || d.Reason != "" {
		t.Fatalf("a repeated RecordDelivery = %+v, changed %v, %v; want the first outcome kept", d, changed, err)
	}
	if _, _, err := l.RecordDelivery(ctx, "dl", sluice.Delivery{Sink: "nope", State: sluice.DeliveryDelivered}); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("RecordDelivery of an unknown sink: %v, want ErrNotFound", err)
	}
	if _, _, err := l.RecordDelivery(ctx, "missing", sluice.Delivery{Sink: "archive", State: sluice.DeliveryDelivered}); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("RecordDelivery of an unknown batch: %v, want ErrNotFound", err)
	}
	if _, changed, err := l.RecordDelivery(ctx, "dl", sluice.Delivery{Sink: "archive", State: sluice.DeliveryFailed, Reason: "HTTP 400: \"no\"", Attempts: 1, At: at}); err != nil || !changed {
		t.Fatalf("recording a failure: changed %v, %v", changed, err)
	}
	// Only a failed sink goes back without force.
	if d, changed, err := l.ResetDelivery(ctx, "dl", "zeta-hook", false); err != nil || changed || d.State != sluice.DeliveryDelivered {
		t.Fatalf("reset of a delivered sink without force = %+v, changed %v, %v", d, changed, err)
	}
	if d, changed, err := l.ResetDelivery(ctx, "dl", "archive", false); err != nil || !changed || d.State != sluice.DeliveryPending || d.Reason != "" || d.Attempts != 1 {
		t.Fatalf("reset of a failed sink = %+v, changed %v, %v", d, changed, err)
	}
	if d, changed, err := l.ResetDelivery(ctx, "dl", "zeta-hook", true); err != nil || !changed || d.State != sluice.DeliveryPending {
		t.Fatalf("forced reset of a delivered sink = %+v, changed %v, %v", d, changed, err)
	}
	if _, _, err := l.ResetDelivery(ctx, "dl", "nope", true); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("ResetDelivery of an unknown sink: %v, want ErrNotFound", err)
	}
	d, _, err = l.RecordDelivery(ctx, "dl", sluice.Delivery{Sink: "archive", State: sluice.DeliveryDelivered, Attempts: 3, At: at})
	if err != nil || d.Attempts != 4 {
		t.Fatalf("attempts after a retry = %+v, %v; want 1+3", d, err)
	}
	b, err := l.GetBatch(ctx, "dl")
	if err != nil || b.State != sluice.StateCompleted || len(b.Deliveries) != 3 || !b.DeliveriesPending() {
		t.Fatalf("batch after deliveries: state %s, %+v, %v", b.State, b.Deliveries, err)
	}
	if d, _ := b.Delivery("archive"); d.State != sluice.DeliveryDelivered || d.Type != "s3" {
		t.Fatalf("archive read back as %+v", d)
	}
	// A later update of the batch keeps its deliveries.
	if b, err = l.UpdateBatch(ctx, "dl", sluice.BatchUpdate{EmailID: "mail-1"}); err != nil || len(b.Deliveries) != 3 {
		t.Fatalf("UpdateBatch dropped the deliveries: %+v, %v", b.Deliveries, err)
	}
}

// FaultLedger is a ledger whose counter takes more than one write (the
// sharded DynamoDB counter): WithFault returns it calling f between them.
// A ledger that counts in one write (SQLite, in one transaction) has no
// such gap, and the crash cases run on it as plain redeliveries.
type FaultLedger interface {
	WithFault(f func(point string) error) sluice.Ledger
}

var errCrash = errors.New("sluicetest: the process died here")

// crashing returns l failing at every fault point it reaches, as a process
// that died there would, and the count of faults hit.
func crashing(l sluice.Ledger) (sluice.Ledger, *atomic.Int64) {
	hits := new(atomic.Int64)
	fl, ok := l.(FaultLedger)
	if !ok {
		return l, hits
	}
	return fl.WithFault(func(string) error { hits.Add(1); return errCrash }), hits
}

// stats is chunk i's report in the cases below: distinct per chunk, so a
// chunk counted twice or lost shows in the sums.
func stats(i int) sluice.ChunkStats {
	s := sluice.ChunkStats{Chunk: i, RowsIn: 10 + i%7, RowsOut: 9 + i%7, RowsRejected: 1, Reasons: map[string]int{"pattern": 1}}
	if i%3 == 0 {
		s.RowsRejected, s.Reasons["enum, #2"] = 2, 1
	}
	return s
}

// wantSums checks the batch holds chunks 0..n-1 of stats once each.
func wantSums(t *testing.T, b sluice.Batch, n, total int) {
	t.Helper()
	var out, rej, enum int
	for i := range n {
		s := stats(i)
		out, rej, enum = out+s.RowsOut, rej+s.RowsRejected, enum+s.Reasons["enum, #2"]
	}
	if b.DoneChunks != n || b.TotalChunks != total || b.RowsOut != out || b.RowsRejected != rej ||
		b.Reasons["pattern"] != n || b.Reasons["enum, #2"] != enum {
		t.Fatalf("batch: done %d/%d out %d rejected %d reasons %v; want %d/%d, %d, %d, pattern %d, enum %d",
			b.DoneChunks, b.TotalChunks, b.RowsOut, b.RowsRejected, b.Reasons, n, total, out, rej, n, enum)
	}
}

// testCrashBetweenWrites: every first report of a chunk (and of the total)
// dies wherever the ledger has a fault point between its writes; each is
// then redelivered. The batch must complete exactly once, in the
// redelivery that finishes the interrupted step, with exact sums.
func testCrashBetweenWrites(t *testing.T, newLedger func(t *testing.T) sluice.Ledger) {
	for _, totalFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("totalFirst=%v", totalFirst), func(t *testing.T) {
			l := newLedger(t)
			dying, hits := crashing(l)
			mustCreate(t, l, newBatch("crash", time.Now()))
			const n = 11
			completed := 0
			report := func(c sluice.Completion, err error, first bool) {
				t.Helper()
				if first && errors.Is(err, errCrash) {
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if c.Completed {
					completed++
				}
			}
			total := func(l sluice.Ledger, first bool) {
				c, err := l.SetTotal(t.Context(), "crash", n, 100)
				report(c, err, first)
			}
			if totalFirst {
				total(dying, true)
				total(l, false)
			}
			for i := range n {
				c, err := dying.ChunkDone(t.Context(), "crash", stats(i))
				report(c, err, true)
				c, err = l.ChunkDone(t.Context(), "crash", stats(i)) // the redelivery
				report(c, err, false)
			}
			if !totalFirst {
				total(dying, true)
				total(l, false)
			}
			if _, ok := l.(FaultLedger); ok && hits.Load() == 0 {
				t.Fatal("the ledger has fault points but reached none: the case tested nothing")
			}
			if completed != 1 {
				t.Fatalf("%d calls saw Completed (%d faults hit), want exactly 1", completed, hits.Load())
			}
			b, err := l.GetBatch(t.Context(), "crash")
			if err != nil {
				t.Fatal(err)
			}
			wantSums(t, b, n, n)
		})
	}
}

// testConcurrentAcrossShards: many chunks, out of order, each reported
// three times at once, the total set in the middle: one Completed, exact
// sums.
func testConcurrentAcrossShards(t *testing.T, newLedger func(t *testing.T) sluice.Ledger) {
	l := newLedger(t)
	mustCreate(t, l, newBatch("many", time.Now()))
	const n = 150
	var completed, counted atomic.Int64
	note := func(c sluice.Completion, err error) {
		if err != nil {
			t.Error(err)
			return
		}
		if c.Completed {
			completed.Add(1)
		}
		if c.Counted {
			counted.Add(1)
		}
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for j := range n {
		i := (j * 37) % n // every chunk once, out of order
		for range 3 {
			wg.Go(func() { <-start; note(l.ChunkDone(t.Context(), "many", stats(i))) })
		}
		if j == n/2 {
			wg.Go(func() { <-start; note(l.SetTotal(t.Context(), "many", n, n*10)) })
		}
	}
	close(start)
	wg.Wait()
	if completed.Load() != 1 || counted.Load() != n {
		t.Fatalf("completed %d times, counted %d chunks; want 1 and %d", completed.Load(), counted.Load(), n)
	}
	b, err := l.GetBatch(t.Context(), "many")
	if err != nil {
		t.Fatal(err)
	}
	wantSums(t, b, n, n)
}

// testExactWhileRunning: a running batch reports exactly what is counted,
// before and after its total is known, in GetBatch and ListBatches.
func testExactWhileRunning(t *testing.T, newLedger func(t *testing.T) sluice.Ledger) {
	l := newLedger(t)
	mustCreate(t, l, newBatch("run", time.Now()))
	check := func(n, total int) {
		t.Helper()
		b, err := l.GetBatch(t.Context(), "run")
		if err != nil {
			t.Fatal(err)
		}
		wantSums(t, b, n, total)
		bs, err := l.ListBatches(t.Context(), sluice.BatchFilter{})
		if err != nil || len(bs) != 1 {
			t.Fatalf("ListBatches: %d batches, %v; want the one batch", len(bs), err)
		}
		wantSums(t, bs[0], n, total)
	}
	const n = 21
	for i := range 13 {
		if _, err := l.ChunkDone(t.Context(), "run", stats(i)); err != nil {
			t.Fatal(err)
		}
	}
	check(13, -1)
	if c, err := l.SetTotal(t.Context(), "run", n, 0); err != nil || c.Complete {
		t.Fatalf("SetTotal = %+v, %v; want not complete", c, err)
	}
	check(13, n)
	for i := 13; i < n; i++ {
		if _, err := l.ChunkDone(t.Context(), "run", stats(i)); err != nil {
			t.Fatal(err)
		}
	}
	check(n, n)
}

// testRejectsRepeated stores rejected rows the way no worker does but a
// ledger must take: thousands in one call, a call out of line order with
// a line twice (the later row is kept), a call that stores lines again
// with other content (as a redelivered chunk may: the new rows are kept),
// and another batch with the same lines. Pages of any size, starting
// anywhere, give each line once, in order, with its latest row.
func testRejectsRepeated(t *testing.T, l sluice.Ledger) {
	mustCreate(t, l, newBatch("b6", time.Now()))
	mustCreate(t, l, newBatch("b7", time.Now()))
	row := func(line int64, msg string) sluice.RowError {
		return sluice.RowError{Chunk: int(line / 2000), Line: line, Column: "uuid", Rule: "pattern", Message: msg, Raw: fmt.Sprintf("%d,\"a,b\"", line)}
	}
	var calls [][]sluice.RowError
	var many []sluice.RowError
	for i := range 2500 {
		many = append(many, row(int64(10+2*i), "first"))
	}
	calls = append(calls, many, []sluice.RowError{row(5, "early"), row(4000, "dup-a"), row(3, "earliest"), row(4000, "dup-b")})
	var again []sluice.RowError
	for line := int64(100); line <= 200; line += 2 {
		again = append(again, row(line, "again"))
	}
	calls = append(calls, again)
	want := map[int64]sluice.RowError{}
	for _, c := range calls {
		if err := l.AddRejects(t.Context(), "b6", c); err != nil {
			t.Fatal(err)
		}
		for _, r := range c {
			want[r.Line] = r
		}
	}
	if err := l.AddRejects(t.Context(), "b7", many[:6]); err != nil {
		t.Fatal(err)
	}
	got := allRejects(t, l, "b6", 0, 97)
	if len(got) != len(want) {
		t.Fatalf("%d rejected rows read, want %d", len(got), len(want))
	}
	for i, r := range got {
		w := want[r.Line]
		if i > 0 && r.Line <= got[i-1].Line || r.Message != w.Message || r.Raw != w.Raw || r.Chunk != w.Chunk || r.BatchID != "b6" {
			t.Fatalf("row %d = %+v, want %+v after line %d", i, r, w, got[max(i-1, 0)].Line)
		}
	}
	page, err := l.Rejects(t.Context(), "b6", 4001, 3)
	if err != nil || len(page) != 3 || page[0].Line != 4002 || page[2].Line != 4006 {
		t.Fatalf("Rejects(after 4001, 3) = %+v, %v; want lines 4002, 4004, 4006", page, err)
	}
	if other := allRejects(t, l, "b7", 0, 4); len(other) != 6 || other[5].Line != many[5].Line {
		t.Fatalf("the other batch's rows = %+v, want its 6", other)
	}
}

// allRejects pages through a batch's rejected rows after line after.
func allRejects(t *testing.T, l sluice.Ledger, id string, after int64, limit int) []sluice.RowError {
	t.Helper()
	var out []sluice.RowError
	for {
		page, err := l.Rejects(t.Context(), id, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > limit {
			t.Fatalf("Rejects(limit %d) returned %d rows", limit, len(page))
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Line
	}
}
