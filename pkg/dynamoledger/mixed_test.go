package dynamoledger_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmw "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/sluice"
)

func avn(i int) types.AttributeValue { return &types.AttributeValueMemberN{Value: strconv.Itoa(i)} }

func batchKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: id}}
}

// oldChunkDone is the one-item counter's ChunkDone write (ledger.go at
// 3467549), as a task of that version sends it during a rolling deploy.
func oldChunkDone(t *testing.T, db *dynamoledger.DB, id string, chunk, rowsOut int) error {
	_, err := db.Client().UpdateItem(t.Context(), &dynamodb.UpdateItemInput{
		TableName: aws.String(db.Tables().Batches), Key: batchKey(id),
		UpdateExpression:    aws.String("ADD chunks :c, doneChunks :one, rowsOut :out, rowsRejected :rej SET lastChunkAt = :now, updatedAt = :now"),
		ConditionExpression: aws.String("attribute_exists(id) AND NOT contains(chunks, :n)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":c": &types.AttributeValueMemberNS{Value: []string{strconv.Itoa(chunk)}}, ":n": avn(chunk),
			":one": avn(1), ":out": avn(rowsOut), ":rej": avn(0), ":now": &types.AttributeValueMemberS{Value: "2026-01-01T00:00:00Z"},
		},
	})
	return err
}

// oldSetTotal is the one-item counter's SetTotal write (3467549).
func oldSetTotal(t *testing.T, db *dynamoledger.DB, id string, chunks, rows int) error {
	_, err := db.Client().UpdateItem(t.Context(), &dynamodb.UpdateItemInput{
		TableName: aws.String(db.Tables().Batches), Key: batchKey(id),
		UpdateExpression:    aws.String("SET totalChunks = :total, rowsIn = :rows, totalAt = :now, updatedAt = :now"),
		ConditionExpression: aws.String("attribute_exists(id) AND totalChunks < :zero"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":total": avn(chunks), ":rows": avn(rows), ":zero": avn(0), ":now": &types.AttributeValueMemberS{Value: "2026-01-01T00:00:00Z"},
		},
	})
	return err
}

// rawTotal is the batch item's totalChunks as the old version decodes it
// (a number attribute, 0 when absent).
func rawTotal(t *testing.T, db *dynamoledger.DB, id string) (total, done int) {
	out, err := db.Client().GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(db.Tables().Batches), Key: batchKey(id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	n := func(k string) int {
		v, _ := out.Item[k].(*types.AttributeValueMemberN)
		if v == nil {
			return 0
		}
		i, _ := strconv.Atoi(v.Value)
		return i
	}
	return n("totalChunks"), n("doneChunks")
}

// An old worker's ChunkDone on a batch this version created fails instead
// of counting (it would complete the batch early with wrong totals); the
// message, retried, is counted by a new worker and the batch completes
// once, with the right totals.
func TestOldWorkerOnNewBatchFails(t *testing.T) {
	db := newDB(t, dynamoledger.WithShardWidth(4))
	l := db.Ledger()
	if _, _, err := l.CreateBatch(t.Context(), sluice.Batch{ID: "mix", Key: "input/m.csv"}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		err := oldChunkDone(t, db, "mix", i, 10)
		var cf *types.ConditionalCheckFailedException
		if err == nil || errors.As(err, &cf) {
			t.Fatalf("old ChunkDone(%d) on a sharded batch: %v; want the write refused with an error the old code returns", i, err)
		}
	}
	if b, err := l.GetBatch(t.Context(), "mix"); err != nil || b.DoneChunks != 0 || b.RowsOut != 0 {
		t.Fatalf("after the old writes: %+v, %v; want nothing counted", b, err)
	}
	completed := 0
	for i := range 4 { // the retried messages, on new workers
		c, err := l.ChunkDone(t.Context(), "mix", sluice.ChunkStats{Chunk: i, RowsIn: 10, RowsOut: 10})
		if err != nil {
			t.Fatal(err)
		}
		if c.Completed {
			completed++
		}
	}
	c, err := l.SetTotal(t.Context(), "mix", 4, 40)
	if err != nil {
		t.Fatal(err)
	}
	if c.Completed {
		completed++
	}
	b, err := l.GetBatch(t.Context(), "mix")
	if err != nil || completed != 1 || b.DoneChunks != 4 || b.TotalChunks != 4 || b.RowsOut != 40 {
		t.Fatalf("batch %+v, %v, completed %d times; want 4/4 chunks, 40 rows out, completed once", b, err, completed)
	}
	if total, done := rawTotal(t, db, "mix"); total != 4 || done != 4 {
		t.Fatalf("an old reader (merge) sees %d of %d chunks, want 4 of 4", done, total)
	}
}

// An old splitter's SetTotal on a new batch fails (it would set the total
// without the partial shards' expected counts, and the batch would never
// complete): its condition does not take the new "unknown" for unknown,
// and the total it then reads back is not its own, which the old code
// returns as an error. The retried split, on a new task, completes it.
func TestOldSplitterOnNewBatchFails(t *testing.T) {
	db := newDB(t, dynamoledger.WithShardWidth(4))
	l := db.Ledger()
	if _, _, err := l.CreateBatch(t.Context(), sluice.Batch{ID: "mix2", Key: "input/m.csv"}); err != nil {
		t.Fatal(err)
	}
	for _, chunks := range []int{0, 3, 80_000} {
		var cf *types.ConditionalCheckFailedException
		if err := oldSetTotal(t, db, "mix2", chunks, 30); !errors.As(err, &cf) {
			t.Fatalf("old SetTotal(%d): %v; want its condition to fail", chunks, err)
		}
		if total, _ := rawTotal(t, db, "mix2"); total == chunks {
			t.Fatalf("the old code reads back total %d, its own: it would report success", total)
		}
	}
	if b, _ := l.GetBatch(t.Context(), "mix2"); b.TotalChunks != -1 {
		t.Fatalf("new GetBatch: total %d, want -1 (unknown)", b.TotalChunks)
	}
	completed := 0
	for i := range 3 {
		c, err := l.ChunkDone(t.Context(), "mix2", sluice.ChunkStats{Chunk: i, RowsIn: 10, RowsOut: 10})
		if err != nil {
			t.Fatal(err)
		}
		if c.Completed {
			completed++
		}
	}
	c, err := l.SetTotal(t.Context(), "mix2", 3, 30)
	if err != nil {
		t.Fatal(err)
	}
	if c.Completed {
		completed++
	}
	b, _ := l.GetBatch(t.Context(), "mix2")
	if completed != 1 || b.DoneChunks != 3 || b.TotalChunks != 3 || b.RowsOut != 30 {
		t.Fatalf("batch done %d/%d rows out %d, completed %d times; want 3/3, 30, once", b.DoneChunks, b.TotalChunks, b.RowsOut, completed)
	}
	if err := oldSetTotal(t, db, "mix2", 3, 30); err == nil {
		t.Fatal("old SetTotal after the new one succeeded")
	}
}

// A batch counted in one item by an older version is refused on every
// chunk the worker reads it for, not only on the first of each shard.
func TestOldLayoutRefusedOnEveryChunk(t *testing.T) {
	db := newDB(t, dynamoledger.WithShardWidth(4))
	_, err := db.Client().PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(db.Tables().Batches), Item: map[string]types.AttributeValue{
		"id": &types.AttributeValueMemberS{Value: "old"}, "state": &types.AttributeValueMemberS{Value: "processing"},
		"totalChunks": avn(-1), "chunks": &types.AttributeValueMemberNS{Value: []string{"0"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	l := db.Ledger()
	var fr sluice.BatchFieldsReader = l
	for _, c := range []int{1, 9, 17} { // all in shard 1 at width 4
		if _, err := fr.BatchFields(t.Context(), "old"); !sluice.IsPermanent(err) {
			t.Fatalf("BatchFields before chunk %d: %v, want a permanent error", c, err)
		}
	}
	if _, err := l.ChunkDone(t.Context(), "old", sluice.ChunkStats{Chunk: 1, RowsOut: 1}); !sluice.IsPermanent(err) {
		t.Fatalf("ChunkDone on the old layout: %v, want a permanent error", err)
	}
	if _, err := l.UpdateBatch(t.Context(), "old", sluice.BatchUpdate{State: sluice.StateFailed, Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	if b, err := fr.BatchFields(t.Context(), "old"); err != nil || b.State != sluice.StateFailed {
		t.Fatalf("BatchFields of the finished old batch: %+v, %v; want it read (its late chunks are ignored)", b, err)
	}
}

// ListBatches reads the shards in flight of running batches only: failed
// batches keep unfinished shards for good, and a listing over all history
// (reference.Collect, status) must not read them each time. FieldsOnly
// reads no shard at all.
func TestListBatchesReadsOnlyRunningShards(t *testing.T) {
	base := newDB(t, dynamoledger.WithShardWidth(4))
	var gets, sent, scanned atomic.Int64
	cfg := awstest.Shared(t).Config(awstest.DynamoDB)
	cfg.APIOptions = append(cfg.APIOptions, func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("count", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if awsmw.GetOperationName(ctx) == "GetItem" {
				gets.Add(1)
			}
			out, md, err := next.HandleInitialize(ctx, in)
			if scan, ok := out.Result.(*dynamodb.ScanOutput); ok {
				sent.Add(int64(scan.Count))
				scanned.Add(int64(scan.ScannedCount))
			}
			return out, md, err
		}), middleware.After)
	})
	l := dynamoledger.New(cfg, base.Tables(), dynamoledger.WithShardWidth(4)).Ledger()
	for i := range 4 {
		id := fmt.Sprint("f", i)
		if _, _, err := l.CreateBatch(t.Context(), sluice.Batch{ID: id, Key: "input/f.csv", State: sluice.StateProcessing}); err != nil {
			t.Fatal(err)
		}
		for c := range 12 { // 8 shards seen, none complete
			if _, err := l.ChunkDone(t.Context(), id, sluice.ChunkStats{Chunk: c, RowsOut: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if i > 0 {
			if _, err := l.UpdateBatch(t.Context(), id, sluice.BatchUpdate{State: sluice.StateFailed, Reason: "x"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	gets.Store(0)
	bs, err := l.ListBatches(t.Context(), sluice.BatchFilter{})
	if err != nil || len(bs) != 4 {
		t.Fatalf("ListBatches: %d batches, %v", len(bs), err)
	}
	if sent.Load() != 4 || scanned.Load() <= 4 {
		t.Fatalf("the scan sent %d of %d items read; want the 4 batches only, the shard and counts items left out by the table", sent.Load(), scanned.Load())
	}
	for _, b := range bs {
		if b.ID == "f0" && (b.DoneChunks != 12 || b.RowsOut != 12) {
			t.Fatalf("running batch listed with %d chunks done, %d rows out; want 12 and 12", b.DoneChunks, b.RowsOut)
		}
	}
	if n := gets.Load(); n != 8 {
		t.Fatalf("ListBatches read %d items; want the 8 shards of the one running batch", n)
	}
	gets.Store(0)
	if _, err := l.ListBatches(t.Context(), sluice.BatchFilter{FieldsOnly: true}); err != nil || gets.Load() != 0 {
		t.Fatalf("ListBatches(FieldsOnly): %d reads, %v; want none", gets.Load(), err)
	}
	scan, err := base.Client().Scan(t.Context(), &dynamodb.ScanInput{TableName: aws.String(base.Tables().Batches), Select: types.SelectCount})
	if err != nil || scan.ScannedCount <= 4 {
		t.Fatalf("the table holds %d items, %v; want the shard items too, for the filter to have something to leave out", scan.ScannedCount, err)
	}
}
