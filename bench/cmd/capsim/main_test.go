package main

import (
	"math"
	"testing"
)

// The model names what limits a 100M-row file of 10,000-row chunks: with
// the one-item counter, the counter (its write cost grows with the item);
// with the sharded one, the worker pool at the deployed size, S3's
// per-prefix rates once the pool is much larger, and the split when it
// reads at one stream's rate.
func TestSimulateNamesTheBottleneck(t *testing.T) {
	m := tenK()
	m.PartitionWCU = math.Inf(1)
	r := simulate(m)
	want := math.Ceil(float64(r.Chunks)/float64(m.Workers*m.PerTask)) * (m.ChunkSec + m.ChunkDoneSec)
	if math.Abs(r.Seconds-want) > 1e-6 || firstSaturated(r) != usePool {
		t.Fatalf("unlimited counter: %.3f s, %s; want %.3f s, the worker pool", r.Seconds, firstSaturated(r), want)
	}
	single := tenK()
	single.Counter = "single"
	r = simulate(single)
	if firstSaturated(r) != useCounter || r.Seconds < 3*r.WorkSeconds {
		t.Fatalf("one-item counter: %.0f s (work %.0f s), %s", r.Seconds, r.WorkSeconds, firstSaturated(r))
	}
	single.ChunkRows = 500
	if r := simulate(single); !r.ItemLimitHit || firstSaturated(r) != useItem {
		t.Fatalf("one-item counter, 200,000 chunks: largest item %.0f bytes, limit not hit", r.MaxItemBytes)
	}
	r = simulate(tenK())
	if firstSaturated(r) != usePool || r.Seconds > 1.05*r.WorkSeconds {
		t.Fatalf("sharded counter: %.0f s (work %.0f s), %s; want the pool's time", r.Seconds, r.WorkSeconds, firstSaturated(r))
	}
	big := tenK()
	big.Workers = 250
	if r := simulate(big); firstSaturated(r) != useS3Get || r.HotBusy > 0.9 {
		t.Fatalf("500 slots: %s first, counter's partition %.0f%% busy; want S3, not the counter", firstSaturated(r), 100*r.HotBusy)
	}
	split := tenK()
	split.SplitMBps = 100
	if r := simulate(split); firstSaturated(r) != useSplit {
		t.Fatalf("a 100 MB/s split: %s first", firstSaturated(r))
	}
}

// The sharded counter's items do not grow with the file: ten times the
// chunks, the same largest shard, and a batch item of shard numbers only.
func TestShardedItemsStayBounded(t *testing.T) {
	for _, rows := range []int{100_000_000, 1_000_000_000} {
		m := defaults()
		m.Rows = rows
		r := simulate(m)
		if r.MaxItemBytes > 16*1024 || r.TotalWCU > 1.5*float64(r.Chunks) {
			t.Fatalf("%d rows: largest item %.0f bytes, %.2f WCU per chunk", rows, r.MaxItemBytes, r.TotalWCU/float64(r.Chunks))
		}
	}
}

// At the AWS default of 100,000-row chunks a 100M-row file is 1,000
// chunks: the pool sets the time, nothing shared is near its limit, and
// the one-item counter is what would stop a larger pool first.
func TestAWSDefaultChunks(t *testing.T) {
	r := simulate(defaults())
	if r.Chunks != 1000 || firstSaturated(r) != usePool || r.Use[1].Share > 0.5 {
		t.Fatalf("defaults: %d chunks, %s first, next %s at %.0f%%", r.Chunks, firstSaturated(r), r.Use[1].Name, 100*r.Use[1].Share)
	}
	single := defaults()
	single.Counter = "single"
	if rs := simulate(single); rs.Slots.Counter >= rs.Slots.S3Put || rs.Slots.Counter >= r.Slots.Counter {
		t.Fatalf("one-item counter feeds %.0f slots, S3 PUT %.0f, sharded %.0f; want the one item lowest", rs.Slots.Counter, rs.Slots.S3Put, r.Slots.Counter)
	}
}

// The worker reads the batch item once per chunk, and the sharded
// counter's seen and done sets grow it by a shard number each per 256
// chunks: the read's cost is modelled from the item's size. At the old
// bound of 5,120,000 chunks a read cost 40 units and the reads fed fewer
// slots than S3; at dynamoledger.MaxChunks (256,000) a read costs 3 and
// they feed over 2,000 slots of 100,000-row chunks.
func TestBatchReadsGrowWithShards(t *testing.T) {
	at := func(chunks int) result {
		m := defaults()
		m.Rows = chunks * m.ChunkRows
		return simulate(m)
	}
	old, now := at(5_120_000), at(256_000)
	if readRCU(old) != 40 || old.Slots.BatchReads >= old.Slots.S3Put {
		t.Fatalf("5,120,000 chunks: batch item %.0f bytes, %.0f RCU a read, feeds %.0f slots (S3 PUT %.0f)", old.BatchItemBytes, readRCU(old), old.Slots.BatchReads, old.Slots.S3Put)
	}
	if readRCU(now) > 3 || now.Slots.BatchReads < 2000 {
		t.Fatalf("256,000 chunks: %.0f RCU a read, feeds %.0f slots", readRCU(now), now.Slots.BatchReads)
	}
	if small := simulate(defaults()); readRCU(small) != 1 {
		t.Fatalf("1,000 chunks: %.0f RCU a read, want 1", readRCU(small))
	}
}
