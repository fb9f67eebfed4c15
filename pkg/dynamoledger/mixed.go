package dynamoledger

import "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

// During a rolling deploy, tasks of the version before the sharded counter
// (one item per batch, 3467549) and of this one take messages of the same
// batches. An old worker would ADD its chunk to the batch item's doneChunks
// directly, completing a sharded batch early with wrong totals, and an old
// splitter would set totalChunks without writing "expected" on the partial
// shards, leaving the batch one shard short forever. So a batch item this
// version creates makes the old writes fail rather than count:
//
//   - "chunks" is a String: the old ChunkDone's "ADD chunks :c" (a number
//     set) is refused with a ValidationException, and the whole update
//     with it;
//   - an unknown total is stored as unknownTotal instead of -1: the old
//     SetTotal's condition "totalChunks < :zero" fails, and the old code,
//     reading back a total other than its own, returns an error.
//
// Either error leaves the message to be retried, and a task of this
// version counts it. An old reader (status, merge) of a batch whose total
// is set reads it right: SetTotal stores the real number, and doneChunks
// is the batch's count of chunks in its complete shards, as before.
const (
	oldChunksAttr = "chunks"
	// unknownTotal stands for "total not yet known" on batch items: above
	// any total either version accepts, so no old condition takes it for
	// unknown and no old comparison takes it for its own.
	unknownTotal = int64(1) << 50
)

// poisonOldCounter marks a new batch item so the old counter's writes on
// it fail (see above).
func poisonOldCounter(item map[string]types.AttributeValue) {
	item[oldChunksAttr] = avS("counted in shard items by a newer version")
	if getN(item, "totalChunks") < 0 {
		item["totalChunks"] = avN(unknownTotal)
	}
}

// totalOf is a batch item's total, -1 while unknown.
func totalOf(item map[string]types.AttributeValue) int {
	n := getN(item, "totalChunks")
	if n == unknownTotal {
		return -1
	}
	return int(n)
}
