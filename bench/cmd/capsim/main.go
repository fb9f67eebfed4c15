// Command capsim checks docs/capacity.md's model of the AWS deployment: it
// simulates one large file through the worker pool and the batch counter
// item, chunk by chunk, and reports which shared resource saturates first.
// The per-chunk cost comes from measurements (BenchmarkProcessChunk, and
// awsbench's upload-to-email time per chunk); the service limits are AWS's
// published ones, as flags so a reader can change them.
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
)

// model is one scenario: the file, the pool, and the limits.
type model struct {
	Rows, ChunkRows  int
	Workers, PerTask int     // tasks autoscaling reaches, chunks each runs at once
	ChunkSec         float64 // one chunk's work on one slot (measured)
	TaskStartPerSec  float64 // tasks the service can start per second
	ColdStart        bool    // the pool starts empty and grows at TaskStartPerSec
	ItemWCUPerSec    float64 // DynamoDB per-partition (so per-item) write limit
	ItemBaseBytes    float64 // the batch item without its done-chunk set
	BytesPerChunkNum float64 // a chunk number's size in the set
	S3PutPerSec      float64 // per prefix
	S3ReqPerChunkPut float64 // PUT-class requests one chunk makes (part, copy)
	SQSMsgPerChunk   float64 // send + receive + delete
	SQSBatch         float64 // messages per SQS call
	MaxItemBytes     float64 // DynamoDB item limit
}

// result is what the simulation found.
type result struct {
	Chunks           int
	Seconds          float64 // first chunk start to last ChunkDone
	WorkSeconds      float64 // the same with an unlimited counter item
	CounterBusy      float64 // share of the time the counter item was writing
	TotalWCU         float64
	FinalItemBytes   float64
	ItemLimitHit     bool
	S3PutRate        float64 // PUT-class requests per second, whole run
	SQSCallsPerSec   float64
	FirstSaturated   string
	CounterUpdatesPS float64 // ChunkDones per second the counter item can take at the end
}

func main() {
	m := defaults()
	fs := flag.NewFlagSet("capsim", flag.ExitOnError)
	fs.IntVar(&m.Rows, "rows", m.Rows, "rows in the file")
	fs.IntVar(&m.ChunkRows, "chunk-rows", m.ChunkRows, "rows per chunk (config chunkRows)")
	fs.IntVar(&m.Workers, "workers", m.Workers, "worker tasks autoscaling reaches (deploy/terraform worker.max_capacity)")
	fs.IntVar(&m.PerTask, "per-task", m.PerTask, "chunks one task runs at once")
	fs.Float64Var(&m.ChunkSec, "chunk-sec", m.ChunkSec, "seconds one chunk of -chunk-rows takes on one slot (measured)")
	fs.BoolVar(&m.ColdStart, "cold", m.ColdStart, "the worker pool starts empty and grows at -task-starts per second")
	fs.Float64Var(&m.TaskStartPerSec, "task-starts", m.TaskStartPerSec, "Fargate tasks the service starts per second")
	fs.Float64Var(&m.ItemWCUPerSec, "item-wcu", m.ItemWCUPerSec, "write capacity units per second one item can take")
	fs.Parse(os.Args[1:])
	print(os.Stdout, m, simulate(m))
}

func defaults() model {
	return model{
		Rows: 100_000_000, ChunkRows: 10_000, Workers: 20, PerTask: 2,
		ChunkSec: 0.233, TaskStartPerSec: 1,
		ItemWCUPerSec: 1000, ItemBaseBytes: 1024, BytesPerChunkNum: 4,
		S3PutPerSec: 3500, S3ReqPerChunkPut: 3.25, SQSMsgPerChunk: 3, SQSBatch: 1,
		MaxItemBytes: 400 * 1024,
	}
}

// simulate runs the chunks through the slots in order. A slot is free at
// the later of its last chunk's end and its task's start; a finished chunk
// then waits for the counter item, which writes one ChunkDone at a time,
// each costing one WCU per started KB of the item as it is after the
// update (DynamoDB charges the larger of the item before and after).
func simulate(m model) result {
	r := result{Chunks: (m.Rows + m.ChunkRows - 1) / m.ChunkRows}
	slots := make([]float64, m.Workers*m.PerTask)
	for i := range slots { // a cold pool's task t runs once the service has launched it
		if m.ColdStart {
			slots[i] = float64(i/m.PerTask) / m.TaskStartPerSec
		}
	}
	counterFree, counterBusy, workEnd := 0.0, 0.0, 0.0
	for c := range r.Chunks {
		s := argmin(slots)
		end := slots[s] + m.ChunkSec
		slots[s] = end
		workEnd = math.Max(workEnd, end)
		item := m.ItemBaseBytes + float64(c+1)*m.BytesPerChunkNum
		if item > m.MaxItemBytes {
			r.ItemLimitHit = true
		}
		wcu := math.Ceil(item / 1024)
		r.TotalWCU += wcu
		write := wcu / m.ItemWCUPerSec
		start := math.Max(end, counterFree)
		counterFree = start + write
		counterBusy += write
		r.FinalItemBytes = item
	}
	r.Seconds, r.WorkSeconds = counterFree, workEnd
	r.CounterBusy = counterBusy / counterFree
	r.CounterUpdatesPS = m.ItemWCUPerSec / math.Ceil(r.FinalItemBytes/1024)
	r.S3PutRate = float64(r.Chunks) * m.S3ReqPerChunkPut / r.Seconds
	r.SQSCallsPerSec = float64(r.Chunks) * m.SQSMsgPerChunk / m.SQSBatch / r.Seconds
	r.FirstSaturated = firstSaturated(m, r)
	return r
}

// firstSaturated names the resource nearest its limit.
func firstSaturated(m model, r result) string {
	switch {
	case r.ItemLimitHit:
		return "the batch item's 400 KB limit (done-chunk set)"
	case r.CounterBusy > 0.9:
		return "the batch counter item's write rate"
	case r.S3PutRate > 0.9*m.S3PutPerSec:
		return "S3 PUT rate per prefix"
	default:
		return "the worker pool (chunk work)"
	}
}

func argmin(xs []float64) int {
	best := 0
	for i, x := range xs {
		if x < xs[best] {
			best = i
		}
	}
	return best
}

func print(w io.Writer, m model, r result) {
	fmt.Fprintf(w, "file %d rows, chunkRows %d: %d chunks; %d tasks x %d slots, %.3f s per chunk\n", m.Rows, m.ChunkRows, r.Chunks, m.Workers, m.PerTask, m.ChunkSec)
	fmt.Fprintf(w, "work alone: %.0f s; with the counter item: %.0f s (counter busy %.0f%%)\n", r.WorkSeconds, r.Seconds, 100*r.CounterBusy)
	fmt.Fprintf(w, "counter item: %.0f WCU in all, final item %.0f KB, %.0f ChunkDone/s at the end; item limit hit: %v\n", r.TotalWCU, r.FinalItemBytes/1024, r.CounterUpdatesPS, r.ItemLimitHit)
	fmt.Fprintf(w, "S3 PUT-class %.0f/s (limit %.0f per prefix); SQS %.0f calls/s\n", r.S3PutRate, m.S3PutPerSec, r.SQSCallsPerSec)
	fmt.Fprintf(w, "first to saturate: %s\n", r.FirstSaturated)
}
