package pipeline

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/csvscan"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/refstore"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// rowsBench is one 10,000-row generated chunk (3% faulty rows, some quoted
// fields) bound to the default configuration and a real reference table
// of the generated financials: the worker's per-row work without the
// ledger and the blob store, which BenchmarkProcessChunk adds.
type rowsBench struct {
	w    *Worker
	run  *chunkRun
	recs [][]byte // the raw records, line endings trimmed
}

func newRowsBench(b *testing.B) *rowsBench {
	var orders, fin bytes.Buffer
	if _, err := gen.Write(&orders, &fin, gen.Options{Rows: 10000, Seed: 1, BadRate: 0.03}); err != nil {
		b.Fatal(err)
	}
	store, err := refstore.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	cr := csv.NewReader(&fin)
	hdr, err := cr.Read()
	if err != nil {
		b.Fatal(err)
	}
	v, err := store.Load(context.Background(), sluice.RefSource{ID: "20260101T000000.000000Z-rows", Columns: hdr, Next: cr.Read})
	if err != nil {
		b.Fatal(err)
	}
	ref, err := store.Version(context.Background(), v.ID)
	if err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	w := NewWorker(&Deps{Config: cfg})
	sc := csvscan.NewScanner(&orders, ',', 1<<20)
	header, err := sc.Next()
	if err != nil {
		b.Fatal(err)
	}
	hfields := strings.Split(string(csvscan.TrimEOL(header)), ",")
	fields := make([][]byte, len(hfields))
	for i, h := range hfields {
		fields[i] = []byte(h)
	}
	run := &chunkRun{ref: pinned{id: v.ID, Reference: ref}, delim: ',', bufs: &chunkBufs{}}
	run.p, err = w.planFor(context.Background(), run.ref, []byte(strings.Join(hfields, "\x00")), fields)
	if err != nil {
		b.Fatal(err)
	}
	rb := &rowsBench{w: w, run: run}
	for {
		rec, err := sc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		rb.recs = append(rb.recs, bytes.Clone(csvscan.TrimEOL(rec)))
	}
	return rb
}

// validateAll starts the chunk again and validates every record.
func (rb *rowsBench) validateAll() {
	r := rb.run
	r.stats = sluice.ChunkStats{Reasons: map[string]int{}}
	r.rejects, r.arena, r.keyArena, r.rows = r.rejects[:0], r.arena[:0], r.keyArena[:0], r.rows[:0]
	for i, rec := range rb.recs {
		r.validate(int64(i+2), rec)
	}
}

// report gives the wall and CPU time per row since c0 (cpuNS): on a
// shared machine the wall time also counts the neighbours' work.
func (rb *rowsBench) report(b *testing.B, c0 int64) {
	n := float64(b.N * len(rb.recs))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/row")
	b.ReportMetric(float64(cpuNS()-c0)/n, "cpu-ns/row")
}

// cpuNS is the process's CPU time so far, user and system.
func cpuNS() int64 {
	var r syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return r.Utime.Nano() + r.Stime.Nano()
}

// BenchmarkRows times the worker's per-row stages on one chunk, each on
// its own: validate (encoding, CSV, field count, column rules), enrich
// (the lookups) and write (the output and error lines).
func BenchmarkRows(b *testing.B) {
	b.Run("validate", func(b *testing.B) {
		rb := newRowsBench(b)
		b.ReportAllocs()
		c0 := cpuNS()
		for b.Loop() {
			rb.validateAll()
		}
		rb.report(b, c0)
	})
	b.Run("enrich", func(b *testing.B) {
		rb := newRowsBench(b)
		rb.validateAll()
		b.ReportAllocs()
		c0 := cpuNS()
		for b.Loop() {
			if err := rb.w.enrich(context.Background(), rb.run); err != nil {
				b.Fatal(err)
			}
		}
		rb.report(b, c0)
	})
	b.Run("write", func(b *testing.B) {
		rb := newRowsBench(b)
		b.ReportAllocs()
		var cpu int64 // in write only
		for b.Loop() {
			b.StopTimer()
			rb.validateAll() // write adds the reference rejects: start again
			if err := rb.w.enrich(context.Background(), rb.run); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			c0 := cpuNS()
			rb.w.write(rb.run)
			cpu += cpuNS() - c0
		}
		rb.report(b, cpuNS()-cpu)
	})
}
