package dynamoledger_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// BenchmarkChunkDone measures one ChunkDone round trip on the DynamoDB
// emulator, as a worker makes it, with the batch's total known (the usual
// case: the split queues chunks faster than workers finish them). Its
// figure feeds capsim's -chunkdone-sec (docs/capacity.md). The emulator
// does not throttle, so this is the call's latency, not the partition
// limit the model adds. "parallel" runs 16 callers at once.
func BenchmarkChunkDone(b *testing.B) {
	for _, par := range []int{1, 16} {
		b.Run(fmt.Sprintf("callers=%d", par), func(b *testing.B) {
			l := newDB(b).Ledger()
			if _, _, err := l.CreateBatch(b.Context(), sluice.Batch{ID: "bench", Key: "input/b.csv"}); err != nil {
				b.Fatal(err)
			}
			if _, err := l.SetTotal(b.Context(), "bench", dynamoledger.MaxChunks, 0); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			s := sluice.ChunkStats{RowsIn: 10_000, RowsOut: 9_990, RowsRejected: 10, Reasons: map[string]int{"pattern": 10}}
			done := func() bool {
				s := s
				s.Chunk = int(next.Add(1) - 1)
				_, err := l.ChunkDone(b.Context(), "bench", s)
				if err != nil {
					b.Error(err)
				}
				return err == nil
			}
			b.ResetTimer()
			if par == 1 {
				for b.Loop() {
					if !done() {
						return
					}
				}
				return
			}
			b.SetParallelism(par / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() && done() {
				}
			})
		})
	}
}
