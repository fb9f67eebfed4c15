package sqlite_test

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

// benchRejects is one chunk's rejected rows as a 10,000-row chunk of the
// bench data set has them (3% rejected): the lines a worker finds, with
// the messages and raw rows of the generator's faults.
func benchRejects(chunk, n int) []sluice.RowError {
	rules := []struct{ col, rule, msg string }{
		{"uuid", "reference", `uuid "824341277" is not in the reference data`},
		{"uuid", "pattern", `uuid "11386768" does not match ^[0-9]{9}$`},
		{"", "field_count", "the row has 9 fields, the header has 8"},
		{"Country", "maxLength", "Country is longer than 50 characters"},
		{"Region", "required", "Region is empty"},
	}
	rows := make([]sluice.RowError, n)
	for i := range rows {
		r := rules[i%len(rules)]
		line := int64(chunk*10000 + i*(10000/n) + 2) // within the chunk's lines
		rows[i] = sluice.RowError{Chunk: chunk, Line: line, Column: r.col, Rule: r.rule, Message: r.msg,
			Raw: fmt.Sprintf("%09d,Philippines,Clothes,Online,M,1/31/10,Asia,2/3/10", line)}
	}
	return rows
}

func benchLedger(b *testing.B) *sqlite.Ledger {
	b.Helper()
	db, err := sqlite.Open(filepath.Join(b.TempDir(), "sluice.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	l := db.Ledger()
	if _, _, err := l.CreateBatch(b.Context(), sluice.Batch{ID: "39a1e93b7f100e2e31fb", Key: "input/orders.csv", CreatedAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	return l
}

// cpuTime is the process's user and system CPU time so far, in ns. The
// wall time of a write benchmark is mostly the checkpoints' fsyncs, which
// depend on the disk and on whoever else uses it; the CPU time is the
// cost the benchmark is about.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkAddRejects stores one chunk's rejected rows per operation, as a
// worker does: 300 rows (a 10,000-row chunk at 3%), and 30 and 3,000 for
// the slope. ns/row is wall time, cpu-ns/row the process's CPU time (both
// cores; it includes the benchmark's own row set-up and the GC).
func BenchmarkAddRejects(b *testing.B) {
	for _, n := range []int{30, 300, 3000} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			l := benchLedger(b)
			chunks := make([][]sluice.RowError, 64)
			for i := range chunks {
				chunks[i] = benchRejects(i, n)
			}
			cpu := cpuTime(b)
			for i := 0; b.Loop(); i++ {
				// Fresh lines each time, as a run's chunks have: a
				// repeat would only test the conflict path.
				rows := chunks[i%len(chunks)]
				for j := range rows {
					rows[j].Line += 10000 * int64(len(chunks))
					rows[j].Chunk += len(chunks)
				}
				if err := l.AddRejects(b.Context(), "39a1e93b7f100e2e31fb", rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N*n), "cpu-ns/row")
		})
	}
}

// BenchmarkChunkDone counts one chunk done per operation, with the
// reasons a chunk with rejected rows carries.
func BenchmarkChunkDone(b *testing.B) {
	l := benchLedger(b)
	if _, err := l.SetTotal(b.Context(), "39a1e93b7f100e2e31fb", 1<<30, 1<<40); err != nil {
		b.Fatal(err)
	}
	reasons := map[string]int{"reference": 60, "pattern": 60, "field_count": 60, "maxLength": 60, "required": 60}
	cpu := cpuTime(b)
	for i := 0; b.Loop(); i++ {
		s := sluice.ChunkStats{Chunk: i, RowsIn: 10000, RowsOut: 9700, RowsRejected: 300, Reasons: reasons}
		if _, err := l.ChunkDone(b.Context(), "39a1e93b7f100e2e31fb", s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}

// BenchmarkQueueMessage is the queue's cost per chunk message at 10M rows:
// 1,000 messages sent in one batch (as the split sends them), then each
// received (one at a time, as a worker with a free slot does) and deleted.
// The queue has the pipeline's MaxReceive, so every receive also looks for
// messages to move to the dead-letter queue.
func BenchmarkQueueMessage(b *testing.B) {
	db, err := sqlite.Open(filepath.Join(b.TempDir(), "sluice.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	q := db.Queue("chunks", sqlite.QueueOptions{MaxReceive: 5})
	bodies := make([][]byte, 1000)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"v":1,"batchId":"39a1e93b7f100e2e31fb","chunk":%d,"offset":%d,"length":720000,"line":%d}`, i, i*720000, i*10000+2)
	}
	cpu := cpuTime(b)
	for b.Loop() {
		if err := q.SendBatch(b.Context(), bodies); err != nil {
			b.Fatal(err)
		}
		for range bodies {
			ms, err := q.Receive(b.Context(), 1, time.Minute, 0)
			if err != nil || len(ms) != 1 {
				b.Fatalf("received %d, %v", len(ms), err)
			}
			if err := q.Delete(b.Context(), ms[0].Receipt); err != nil {
				b.Fatal(err)
			}
		}
	}
	msgs := float64(b.N * len(bodies))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/msgs, "ns/msg")
	b.ReportMetric(float64(cpuTime(b)-cpu)/msgs, "cpu-ns/msg")
}

// BenchmarkEmptyPoll is one look at an empty queue, what each idle stage's
// consumer does every pollEvery while a batch runs (ingest, merge, notify
// and deliveries wait while the chunks are processed), with another
// queue's backlog of 1,000 messages in the table.
func BenchmarkEmptyPoll(b *testing.B) {
	db, err := sqlite.Open(filepath.Join(b.TempDir(), "sluice.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	backlog := make([][]byte, 1000)
	for i := range backlog {
		backlog[i] = []byte("chunk")
	}
	if err := db.Queue("chunks", sqlite.QueueOptions{}).SendBatch(b.Context(), backlog); err != nil {
		b.Fatal(err)
	}
	q := db.Queue("merge", sqlite.QueueOptions{MaxReceive: 5})
	cpu := cpuTime(b)
	for b.Loop() {
		if ms, err := q.Receive(b.Context(), 1, time.Minute, 0); err != nil || len(ms) != 0 {
			b.Fatalf("received %d, %v", len(ms), err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}
