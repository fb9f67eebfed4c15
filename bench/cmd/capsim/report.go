package main

import (
	"fmt"
	"io"
	"math"
	"sort"
)

// use is one shared resource's load as a share of its limit.
type use struct {
	Name  string
	Share float64
}

// The resources capsim weighs, by the names it reports.
const (
	usePool    = "the worker pool (chunk work)"
	useCounter = "the batch counter's busiest DynamoDB partition (writes)"
	useItem    = "the largest counter item against DynamoDB's 400 KB"
	useReads   = "the batch item's reads (one GetBatch per chunk)"
	useS3Put   = "S3 PUT-class rate per prefix"
	useS3Get   = "S3 GET/HEAD rate per prefix"
	useSplit   = "the split's read of the input"
)

// uses weighs every resource over the whole run, worst first.
func uses(m model, r result) []use {
	n, sec := float64(r.Chunks), r.Seconds
	slots := float64(m.Workers * m.PerTask)
	us := []use{
		{usePool, n * (m.ChunkSec + m.ChunkDoneSec) / (slots * sec)},
		{useCounter, r.HotBusy},
		{useItem, r.MaxItemBytes / m.MaxItemBytes},
		{useReads, n * m.ReadsPerChunkDon * readRCU(r) / sec / m.PartitionRCU},
		{useS3Put, n * m.S3PutPerChunk / sec / m.S3PutPerSec},
		{useS3Get, n * m.S3GetPerChunk / sec / m.S3GetPerSec},
		{useSplit, r.SplitSeconds / sec},
	}
	sort.SliceStable(us, func(i, j int) bool { return us[i].Share > us[j].Share })
	return us
}

// readRCU is what one strongly consistent read of the batch item costs
// (a unit per 4 KB) at the end of the run, when its shard sets are
// largest: the rate the reads allow then is what counts.
func readRCU(r result) float64 { return math.Ceil(r.BatchItemBytes / 4096) }

// slotsFor is how many worker slots each limit could keep busy, if the
// chunks ended in order at that limit's rate.
func slotsFor(m model, r result) slotLimits {
	per := m.ChunkSec + m.ChunkDoneSec // one slot's seconds per chunk
	// The busiest partition wrote for HotBusy×Seconds in all: written
	// back to back, the chunks would go at Chunks over that time. The one
	// item, though, costs more per write as it grows: what it can take at
	// the end is what counts.
	counter := float64(r.Chunks) / (r.HotBusy * r.Seconds) * per
	if m.Counter == "single" {
		counter = m.PartitionWCU / math.Ceil(r.MaxItemBytes/1024) * per
	}
	return slotLimits{
		Counter:    counter,
		S3Put:      m.S3PutPerSec / m.S3PutPerChunk * per,
		S3Get:      m.S3GetPerSec / m.S3GetPerChunk * per,
		BatchReads: m.PartitionRCU / (m.ReadsPerChunkDon * readRCU(r)) * per,
	}
}

// firstSaturated names the resource nearest its limit.
func firstSaturated(r result) string {
	if r.ItemLimitHit {
		return useItem
	}
	return r.Use[0].Name
}

func print(w io.Writer, m model, r result) {
	fmt.Fprintf(w, "file %d rows, chunkRows %d: %d chunks; %d tasks x %d slots, %.3f s per chunk + %.4f s ChunkDone; counter %s", m.Rows, m.ChunkRows, r.Chunks, m.Workers, m.PerTask, m.ChunkSec, m.ChunkDoneSec, m.Counter)
	if m.Counter == "sharded" {
		fmt.Fprintf(w, " (%d chunks a shard, %d lanes, %d partitions)", m.ShardWidth, m.ShardLanes, m.Partitions)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "work alone: %.0f s; the file: %.0f s; split done at %.0f s\n", r.WorkSeconds, r.Seconds, r.SplitSeconds)
	fmt.Fprintf(w, "counter: %.0f WCU in all (%.2f per chunk), largest item %.1f KB, busiest partition writing %.0f%% of the time\n", r.TotalWCU, r.TotalWCU/float64(r.Chunks), r.MaxItemBytes/1024, 100*r.HotBusy)
	fmt.Fprintf(w, "batch item at the end: %.1f KB, %.0f RCU a consistent read\n", r.BatchItemBytes/1024, readRCU(r))
	fmt.Fprintf(w, "S3 PUT-class %.0f/s, GET/HEAD %.0f/s; SQS %.0f calls/s\n", float64(r.Chunks)*m.S3PutPerChunk/r.Seconds, float64(r.Chunks)*m.S3GetPerChunk/r.Seconds, float64(r.Chunks)*m.SQSMsgPerChunk/m.SQSBatch/r.Seconds)
	fmt.Fprintln(w, "share of each limit used:")
	for _, u := range r.Use {
		fmt.Fprintf(w, "  %5.1f%%  %s\n", 100*u.Share, u.Name)
	}
	fmt.Fprintf(w, "slots each limit could feed: counter %.0f, S3 PUT %.0f, S3 GET %.0f, batch reads %.0f (pool: %d)\n", r.Slots.Counter, r.Slots.S3Put, r.Slots.S3Get, r.Slots.BatchReads, m.Workers*m.PerTask)
	fmt.Fprintf(w, "first to saturate: %s\n", firstSaturated(r))
}
