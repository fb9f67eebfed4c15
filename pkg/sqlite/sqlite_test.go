package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sluice/sluicetest"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

func open(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestQueueConformance(t *testing.T) {
	t.Parallel()
	sluicetest.TestQueue(t, func(t *testing.T, maxReceive int) (sluice.Queue, sluice.Queue) {
		q := open(t).Queue("chunks", sqlite.QueueOptions{MaxReceive: maxReceive})
		return q, q.DeadLetterQueue()
	})
}

func TestLedgerConformance(t *testing.T) {
	t.Parallel()
	sluicetest.TestLedger(t, func(t *testing.T) sluice.Ledger { return open(t).Ledger() })
}

func TestQueuesAreSeparate(t *testing.T) {
	db := open(t)
	a, b := db.Queue("a", sqlite.QueueOptions{}), db.Queue("b", sqlite.QueueOptions{})
	if err := a.Send(t.Context(), []byte("for a")); err != nil {
		t.Fatal(err)
	}
	ms, err := b.Receive(t.Context(), 10, time.Minute, 0)
	if err != nil || len(ms) != 0 {
		t.Fatalf("queue b received %d messages sent to a (%v)", len(ms), err)
	}
}

func TestReleaseInFlightAndRedrive(t *testing.T) {
	db := open(t)
	q := db.Queue("work", sqlite.QueueOptions{MaxReceive: 3})
	for i := range 3 {
		q.Send(t.Context(), []byte(fmt.Sprint(i)))
	}
	ms, _ := q.Receive(t.Context(), 3, time.Hour, 0)
	if len(ms) != 3 {
		t.Fatalf("received %d", len(ms))
	}
	n, err := q.ReleaseInFlight(t.Context())
	if err != nil || n != 3 {
		t.Fatalf("ReleaseInFlight = %d, %v; want 3", n, err)
	}
	ms, _ = q.Receive(t.Context(), 3, time.Hour, 0)
	if len(ms) != 3 || ms[0].ReceiveCount != 2 {
		t.Fatalf("after release: %d messages, count %d", len(ms), ms[0].ReceiveCount)
	}
	if err := q.DeadLetter(t.Context(), ms[0], "malformed message"); err != nil {
		t.Fatal(err)
	}
	dead, err := q.PeekDead(t.Context(), 10)
	if err != nil || len(dead) != 1 || dead[0].Reason != "malformed message" || string(dead[0].Body) != "0" {
		t.Fatalf("PeekDead = %+v, %v", dead, err)
	}
	moved, err := q.Redrive(t.Context())
	if err != nil || moved != 1 {
		t.Fatalf("Redrive = %d, %v", moved, err)
	}
	back, _ := q.Receive(t.Context(), 1, time.Hour, 0)
	if len(back) != 1 || string(back[0].Body) != "0" || back[0].ReceiveCount != 1 {
		t.Fatalf("redriven message: %+v", back)
	}
}

func TestLongPollWakesOnSend(t *testing.T) {
	q := open(t).Queue("wake", sqlite.QueueOptions{})
	go func() {
		time.Sleep(50 * time.Millisecond)
		q.Send(t.Context(), []byte("hi"))
	}()
	start := time.Now()
	ms, err := q.Receive(t.Context(), 1, time.Minute, 10*time.Second)
	if err != nil || len(ms) != 1 {
		t.Fatalf("Receive = %d, %v", len(ms), err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("long poll took %v to see a send", el)
	}
}

// TestStateCountsOfAnOlderDatabase: a database made before the counts
// existed gets them, counted from its batches, when it is next opened.
func TestStateCountsOfAnOlderDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.db")
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l := db.Ledger()
	for i, st := range []sluice.State{sluice.StateSplitting, sluice.StateFailed, sluice.StateFailed} {
		if _, _, err := l.CreateBatch(t.Context(), sluice.Batch{ID: fmt.Sprint("b", i), Key: "input/x.csv", State: st}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	// As the database was before this release.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(t.Context(), `DROP TRIGGER batches_count_insert; DROP TRIGGER batches_count_update; DROP TRIGGER batches_count_delete; DROP TABLE batch_state_counts`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err = sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Ledger().CountByState(t.Context())
	if err != nil || got[sluice.StateSplitting] != 1 || got[sluice.StateFailed] != 2 || len(got) != 2 {
		t.Fatalf("CountByState = %v, %v; want splitting 1, failed 2", got, err)
	}
}

// TestSpoolTablesWithAnyContext: the spool's tables are made by Open, so a
// first caller whose context is already cancelled breaks nothing for the
// callers after it (they were made on first use, and that error kept).
func TestSpoolTablesWithAnyContext(t *testing.T) {
	db := open(t)
	l := db.Ledger()
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := l.LoadSpool(cctx, "x"); err == nil {
		t.Fatal("no error with a cancelled context")
	}
	if err := l.SaveSpool(t.Context(), "x", []byte("{}"), 0, []byte{1}); err != nil {
		t.Fatalf("with a live context afterwards: %v", err)
	}
	if sum, ok, err := l.SpoolChunk(t.Context(), "x", 0); !ok || err != nil || len(sum) != 1 {
		t.Fatalf("chunk digest: %v %v %v", sum, ok, err)
	}
	if err := l.DeleteSpool(t.Context(), "x"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l.SpoolChunk(t.Context(), "x", 0); ok {
		t.Error("a chunk digest outlived DeleteSpool")
	}
	if n, err := l.SpoolRows(t.Context()); n != 0 || err != nil {
		t.Errorf("%d spool rows after DeleteSpool (%v)", n, err)
	}
}
