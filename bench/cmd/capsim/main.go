// Command capsim checks docs/capacity.md's model of the AWS deployment: it
// simulates one large file through the split, the worker pool and the
// batch counter, chunk by chunk, and reports how busy each shared resource
// was and which saturates first. The per-chunk costs come from
// measurements (awsbench's upload-to-email time per chunk, and
// BenchmarkChunkDone in pkg/dynamoledger for the counter's round trip);
// the service limits are AWS's published ones, as flags so a reader can
// change them.
//
// The counter is modelled as it is stored: -counter sharded (the default,
// pkg/dynamoledger shards.go) writes each ChunkDone to its shard item and
// a shard's first and last chunk also to the batch item; -counter single
// is the layout before it, one batch item that took every ChunkDone and
// grew by a chunk number each time. Items live in DynamoDB partitions by
// the hash of their key; a partition writes at most 1,000 WCU/s, and a
// write costs one WCU per started KB of the item.
package main

import (
	"flag"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"slices"
	"strconv"
)

// model is one scenario: the file, the pool, the counter and the limits.
type model struct {
	Rows, ChunkRows  int
	Workers, PerTask int     // tasks autoscaling reaches, chunks each runs at once
	ChunkSec         float64 // one chunk's work on one slot, without the counter (measured)
	ChunkDoneSec     float64 // one ChunkDone round trip (measured on the emulator)
	TaskStartPerSec  float64 // tasks the service can start per second
	ColdStart        bool    // the pool starts empty and grows at TaskStartPerSec
	SplitMBps        float64 // the split's read rate; 0: every chunk queued at once
	RowBytes         float64 // bytes per row of the input

	Counter          string  // "sharded" or "single"
	ShardWidth       int     // chunks per shard item
	ShardLanes       int     // shards the chunks in flight spread over
	Partitions       int     // partitions the table's items spread over
	PartitionWCU     float64 // DynamoDB per-partition write limit
	PartitionRCU     float64 // DynamoDB per-partition strongly consistent read limit
	BatchBaseBytes   float64 // the batch item without chunk or shard numbers
	ShardBaseBytes   float64 // a shard item without its chunk numbers
	BytesPerNum      float64 // a chunk or shard number's size in a set
	MaxItemBytes     float64 // DynamoDB item limit
	S3PutPerSec      float64 // per prefix
	S3GetPerSec      float64 // per prefix
	S3PutPerChunk    float64 // PUT-class requests one chunk makes (measured)
	S3GetPerChunk    float64 // GET/HEAD requests one chunk makes (measured)
	SQSMsgPerChunk   float64 // send + receive + delete
	SQSBatch         float64 // messages per SQS call
	ReadsPerChunkDon float64 // consistent reads of the batch item per chunk (the worker's GetBatch)
}

// result is what the simulation found.
type result struct {
	Chunks       int
	Seconds      float64 // first chunk start to the last ChunkDone's answer
	WorkSeconds  float64 // the same with an unlimited counter and an instant split
	SplitSeconds float64 // when the split queued the last chunk
	TotalWCU     float64
	MaxItemBytes float64 // the largest counter item written
	// BatchItemBytes is the batch item at the end of the run: its fields
	// and, sharded, the numbers of every shard in its seen and done sets.
	// The worker reads it once per chunk.
	BatchItemBytes float64
	ItemLimitHit   bool
	HotBusy        float64 // share of the run the busiest partition was writing
	Use            []use   // every shared resource's share of its limit, worst first
	Slots          slotLimits
}

// slotLimits: how many worker slots each limit could feed at most.
type slotLimits struct{ Counter, S3Put, S3Get, BatchReads float64 }

func main() {
	m := defaults()
	if slices.Contains(os.Args[1:], "-10k") {
		m = tenK()
	}
	fs := flag.NewFlagSet("capsim", flag.ExitOnError)
	fs.Bool("10k", false, "start from chunks of 10,000 rows (0.230 s, the copy-chunks layout's S3 requests) instead of the AWS default of 100,000")
	fs.IntVar(&m.Rows, "rows", m.Rows, "rows in the file")
	fs.IntVar(&m.ChunkRows, "chunk-rows", m.ChunkRows, "rows per chunk (config chunkRows)")
	fs.IntVar(&m.Workers, "workers", m.Workers, "worker tasks autoscaling reaches (deploy/terraform worker.max_capacity)")
	fs.IntVar(&m.PerTask, "per-task", m.PerTask, "chunks one task runs at once")
	fs.Float64Var(&m.ChunkSec, "chunk-sec", m.ChunkSec, "seconds one chunk of -chunk-rows takes on one slot, without the counter (measured)")
	fs.Float64Var(&m.ChunkDoneSec, "chunkdone-sec", m.ChunkDoneSec, "seconds one ChunkDone round trip takes (BenchmarkChunkDone)")
	fs.BoolVar(&m.ColdStart, "cold", m.ColdStart, "the worker pool starts empty and grows at -task-starts per second")
	fs.Float64Var(&m.TaskStartPerSec, "task-starts", m.TaskStartPerSec, "Fargate tasks the service starts per second")
	fs.Float64Var(&m.SplitMBps, "split-mbps", m.SplitMBps, "MB/s the split reads the input at (0: chunks all queued at once)")
	fs.StringVar(&m.Counter, "counter", m.Counter, "counter layout: sharded or single")
	fs.IntVar(&m.ShardWidth, "shard-width", m.ShardWidth, "chunks per shard item (dynamoledger.DefaultShardWidth)")
	fs.IntVar(&m.ShardLanes, "shard-lanes", m.ShardLanes, "shards consecutive chunks spread over (pkg/dynamoledger shardLanes)")
	fs.IntVar(&m.Partitions, "partitions", m.Partitions, "partitions the table's items spread over")
	fs.Float64Var(&m.PartitionWCU, "partition-wcu", m.PartitionWCU, "write capacity units per second one partition takes")
	fs.Float64Var(&m.S3PutPerChunk, "s3-put-per-chunk", m.S3PutPerChunk, "S3 PUT-class requests per chunk")
	fs.Float64Var(&m.S3GetPerChunk, "s3-get-per-chunk", m.S3GetPerChunk, "S3 GET/HEAD requests per chunk")
	fs.Float64Var(&m.SQSBatch, "sqs-batch", m.SQSBatch, "messages per SQS call")
	fs.Parse(os.Args[1:])
	if m.Counter != "sharded" && m.Counter != "single" {
		fmt.Fprintln(os.Stderr, "capsim: -counter is sharded or single")
		os.Exit(2)
	}
	print(os.Stdout, m, simulate(m))
}

// defaults are the AWS services' defaults: chunks of 100,000 rows
// (config.LoadFor), whose S3 requests BENCHMARKS.md counted on the wire
// (the "default" layout at 1M rows: 66 PUT/COPY/POST and 53 GET/HEAD per
// 10 chunks); a chunk's time is ten times the 0.233 s measured for 10,000
// rows on the AWS path, less the ChunkDone measured on its own.
func defaults() model {
	return model{
		Rows: 100_000_000, ChunkRows: 100_000, Workers: 20, PerTask: 2,
		ChunkSec: 2.327, ChunkDoneSec: 0.003, TaskStartPerSec: 1, RowBytes: 100,
		Counter: "sharded", ShardWidth: 256, ShardLanes: 8, Partitions: 4,
		PartitionWCU: 1000, PartitionRCU: 3000,
		BatchBaseBytes: 1024, ShardBaseBytes: 220, BytesPerNum: 4, MaxItemBytes: 400 * 1024,
		S3PutPerSec: 3500, S3GetPerSec: 5500, S3PutPerChunk: 6.6, S3GetPerChunk: 5.3,
		SQSMsgPerChunk: 3, SQSBatch: 1, ReadsPerChunkDon: 1,
	}
}

// tenK is the same with chunks of 10,000 rows (the local default, and
// the AWS one before): 0.230 s each, and the S3 requests the copy-chunks
// layout made per chunk (3.25 PUT-class, 6.07 GET/HEAD).
func tenK() model {
	m := defaults()
	m.ChunkRows, m.ChunkSec, m.S3PutPerChunk, m.S3GetPerChunk = 10_000, 0.230, 3.25, 6.07
	return m
}

// partition is where DynamoDB keeps an item: by its key's hash.
func (m model) partition(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(m.Partitions))
}

// table is the counter's partitions: when each is next free, how long it
// has written in all.
type table struct {
	m          model
	free, busy []float64
	wcu, max   float64
}

// write queues one write of an item of size bytes on key's partition no
// sooner than at, and returns when it is done.
func (t *table) write(key string, bytes, at float64) float64 {
	p := t.m.partition(key)
	wcu := math.Ceil(bytes / 1024)
	d := wcu / t.m.PartitionWCU
	start := math.Max(at, t.free[p])
	t.free[p] = start + d
	t.busy[p] += d
	t.wcu += wcu
	t.max = math.Max(t.max, bytes)
	return start + d
}

// chunkDone writes chunk c's ChunkDone at time at, as the chosen layout
// stores it, and returns when the worker has its answer, the counter's
// writes for it all done: the worker that completed the
// batch sends the merge message then.
func (t *table) chunkDone(c, chunks int, at float64) float64 {
	m := t.m
	if m.Counter == "single" {
		done := t.write("batch", m.BatchBaseBytes+float64(c+1)*m.BytesPerNum, at)
		return done + m.ChunkDoneSec
	}
	w, lanes := m.ShardWidth, m.ShardLanes
	block, lane := c/(w*lanes), c%lanes
	k := block*lanes + lane
	n := (c-block*w*lanes)/lanes + 1 // chunks in the shard after this one (chunks end roughly in order)
	shards := float64(chunks+w-1) / float64(w)
	batch := m.BatchBaseBytes + 2*shards*m.BytesPerNum
	done := t.write("shard#"+strconv.Itoa(k), m.ShardBaseBytes+float64(n)*m.BytesPerNum, at)
	if n == 1 { // the shard's first chunk lists it on the batch item
		done = t.write("batch", batch, done)
	}
	if n == w || c+lanes >= chunks { // the shard is complete: its sums go to the batch item
		done = t.write("batch", batch, done)
	}
	return done + m.ChunkDoneSec
}

// simulate runs the file, and again with an unlimited counter and an
// instant split for the time of the work alone.
func simulate(m model) result {
	r := run(m)
	free := m
	free.PartitionWCU, free.SplitMBps = math.Inf(1), 0
	r.WorkSeconds = run(free).Seconds
	r.Use = uses(m, r)
	r.Slots = slotsFor(m, r)
	return r
}

// run sends the chunks through the slots in order. A slot is free at the
// later of its last chunk's answer from the counter and its task's start;
// a chunk starts no sooner than the split has queued it.
func run(m model) result {
	r := result{Chunks: (m.Rows + m.ChunkRows - 1) / m.ChunkRows}
	slots := make([]float64, m.Workers*m.PerTask)
	for i := range slots { // a cold pool's task t runs once the service has launched it
		if m.ColdStart {
			slots[i] = float64(i/m.PerTask) / m.TaskStartPerSec
		}
	}
	t := &table{m: m, free: make([]float64, m.Partitions), busy: make([]float64, m.Partitions)}
	chunkMB := float64(m.ChunkRows) * m.RowBytes / 1e6
	for c := range r.Chunks {
		queued := 0.0
		if m.SplitMBps > 0 {
			queued = float64(c+1) * chunkMB / m.SplitMBps
		}
		r.SplitSeconds = math.Max(r.SplitSeconds, queued)
		s := argmin(slots)
		end := math.Max(slots[s], queued) + m.ChunkSec
		answered := t.chunkDone(c, r.Chunks, end)
		slots[s] = answered
		r.Seconds = math.Max(r.Seconds, answered)
	}
	r.TotalWCU, r.MaxItemBytes = t.wcu, t.max
	r.BatchItemBytes = m.BatchBaseBytes
	if m.Counter == "sharded" {
		r.BatchItemBytes += 2 * math.Ceil(float64(r.Chunks)/float64(m.ShardWidth)) * m.BytesPerNum
	} else {
		r.BatchItemBytes += float64(r.Chunks) * m.BytesPerNum
	}
	r.ItemLimitHit = t.max > m.MaxItemBytes
	r.HotBusy = t.busy[argmax(t.busy)] / r.Seconds
	return r
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

func argmax(xs []float64) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}
