package dynamoledger_test

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sluice/sluicetest"
)

func TestMain(m *testing.M) { awstest.Main(m, awstest.DynamoDB) }

var prefixes atomic.Int64

// newDB makes a fresh set of tables for one test and drops them after it.
func newDB(t testing.TB, opts ...dynamoledger.Option) *dynamoledger.DB {
	t.Helper()
	env := awstest.Shared(t)
	prefix := fmt.Sprintf("sluice-test-%d-%d-", time.Now().UnixNano()%1e9, prefixes.Add(1))
	db := dynamoledger.New(env.Config(awstest.DynamoDB), dynamoledger.DefaultTables(prefix), opts...)
	if err := db.CreateTables(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tb := db.Tables()
		for _, name := range []string{tb.Batches, tb.Rejects, tb.Reference} {
			db.Client().DeleteTable(t.Context(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		}
	})
	return db
}

func TestLedgerConformance(t *testing.T) {
	sluicetest.TestLedger(t, func(t *testing.T) sluice.Ledger { return newDB(t).Ledger() })
}

// TestLedgerConformanceManyShards runs the suite with shards of 4 chunks,
// so its batches span many shards, full ones and a partial last one.
func TestLedgerConformanceManyShards(t *testing.T) {
	sluicetest.TestLedger(t, func(t *testing.T) sluice.Ledger { return newDB(t, dynamoledger.WithShardWidth(4)).Ledger() })
}

func TestCatalogConformance(t *testing.T) {
	sluicetest.TestCatalog(t, func(t *testing.T) sluice.Catalog { return newDB(t).Catalog() })
}

func TestCreateTablesIsIdempotent(t *testing.T) {
	db := newDB(t)
	if err := db.CreateTables(t.Context()); err != nil {
		t.Fatalf("second CreateTables: %v", err)
	}
}

// Many workers report the same chunks at once while the splitter sets the
// total: exactly one call may see Completed, and the counters must hold
// each chunk once.
func TestChunkDoneUnderConcurrency(t *testing.T) {
	l := newDB(t).Ledger()
	if _, _, err := l.CreateBatch(t.Context(), sluice.Batch{ID: "conc", Key: "input/c.csv"}); err != nil {
		t.Fatal(err)
	}
	const chunks, reports = 60, 3
	var completed, counted atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range chunks {
		for range reports {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c, err := l.ChunkDone(t.Context(), "conc", sluice.ChunkStats{
					Chunk: i, RowsIn: 5, RowsOut: 4, RowsRejected: 1,
					Reasons: map[string]int{"enum": 1, "weird rule #1, with: punctuation": 1},
				})
				if err != nil {
					t.Error(err)
					return
				}
				if c.Counted {
					counted.Add(1)
				}
				if c.Completed {
					completed.Add(1)
				}
			}()
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-start
		time.Sleep(20 * time.Millisecond) // somewhere in the middle
		c, err := l.SetTotal(t.Context(), "conc", chunks, chunks*5)
		if err != nil {
			t.Error(err)
		}
		if c.Completed {
			completed.Add(1)
		}
	}()
	close(start)
	wg.Wait()
	if completed.Load() != 1 || counted.Load() != chunks {
		t.Fatalf("completed %d times, counted %d chunks; want 1 and %d", completed.Load(), counted.Load(), chunks)
	}
	b, err := l.GetBatch(t.Context(), "conc")
	if err != nil {
		t.Fatal(err)
	}
	if b.DoneChunks != chunks || b.RowsOut != chunks*4 || b.RowsRejected != chunks || b.RowsIn != chunks*5 ||
		b.Reasons["enum"] != chunks || b.Reasons["weird rule #1, with: punctuation"] != chunks {
		t.Fatalf("batch: %+v", b)
	}
	if b.ProcessAt.IsZero() {
		t.Error("a complete batch has no ProcessAt")
	}
	// A repeated SetTotal neither completes again nor fails; a different
	// total is a bug in the caller.
	if c, err := l.SetTotal(t.Context(), "conc", chunks, chunks*5); err != nil || c.Completed || !c.Complete {
		t.Fatalf("repeated SetTotal = %+v, %v", c, err)
	}
	if _, err := l.SetTotal(t.Context(), "conc", chunks+1, 0); err == nil {
		t.Fatal("SetTotal accepted a second, different total")
	}
}

func TestUnknownBatch(t *testing.T) {
	l := newDB(t).Ledger()
	if _, err := l.ChunkDone(t.Context(), "nope", sluice.ChunkStats{Chunk: 1}); err == nil {
		t.Error("ChunkDone on an unknown batch succeeded")
	}
	if _, err := l.SetTotal(t.Context(), "nope", 1, 1); err == nil {
		t.Error("SetTotal on an unknown batch succeeded")
	}
	if _, err := l.UpdateBatch(t.Context(), "nope", sluice.BatchUpdate{State: sluice.StateFailed}); err == nil {
		t.Error("UpdateBatch on an unknown batch succeeded")
	}
	if _, err := l.GetBatch(t.Context(), "nope"); err == nil {
		t.Error("GetBatch found an unknown batch")
	}
}

// Updates that race with chunk counting must not overwrite the counters.
func TestUpdateKeepsCounters(t *testing.T) {
	l := newDB(t).Ledger()
	l.CreateBatch(t.Context(), sluice.Batch{ID: "u", Key: "input/u.csv"})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(2)
		go func() { defer wg.Done(); l.ChunkDone(t.Context(), "u", sluice.ChunkStats{Chunk: i, RowsOut: 1}) }()
		go func() {
			defer wg.Done()
			if _, err := l.UpdateBatch(t.Context(), "u", sluice.BatchUpdate{State: sluice.StateProcessing, OutputKey: fmt.Sprint("out", i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b, _ := l.GetBatch(t.Context(), "u")
	if b.DoneChunks != 20 || b.RowsOut != 20 || b.State != sluice.StateProcessing {
		t.Fatalf("batch: done %d out %d state %s", b.DoneChunks, b.RowsOut, b.State)
	}
}

func TestRejectsWithEmptyFieldsAndLargeBatches(t *testing.T) {
	l := newDB(t).Ledger()
	l.CreateBatch(t.Context(), sluice.Batch{ID: "r", Key: "input/r.csv"})
	var rows []sluice.RowError
	for i := range 130 {
		rows = append(rows, sluice.RowError{Line: int64(i + 2), Rule: "columns", Message: "wrong field count", Raw: ""})
	}
	rows = append(rows, rows[5]) // the same line twice in one call
	if err := l.AddRejects(t.Context(), "r", rows); err != nil {
		t.Fatal(err)
	}
	got, err := l.Rejects(t.Context(), "r", 0, 1000)
	if err != nil || len(got) != 130 || got[0].Column != "" || got[0].Raw != "" || got[129].Line != 131 {
		t.Fatalf("Rejects = %d rows, %v", len(got), err)
	}
}

// load publishes rows as a new version through c.
func load(t *testing.T, c sluice.Catalog, id string, rows ...[]string) sluice.RefVersion {
	t.Helper()
	i := 0
	v, err := c.Load(t.Context(), sluice.RefSource{ID: id, Hash: id, Columns: []string{"k", "v"}, Next: func() ([]string, error) {
		if i == len(rows) {
			return nil, io.EOF
		}
		i++
		return rows[i-1], nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestLookupManyKeysAndCache(t *testing.T) {
	db := newDB(t, dynamoledger.WithCacheSize(50))
	c := db.Catalog()
	const n = 730 // several BatchGetItem calls of 100 keys
	var rows [][]string
	for i := range n {
		rows = append(rows, []string{fmt.Sprint("key", i), fmt.Sprint("val", i)})
	}
	v := load(t, c, "20260101T000000.000001Z-many", rows...)
	ref, err := c.Version(t.Context(), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for j := range n + 70 {
		keys = append(keys, fmt.Sprint("key", j))
	}
	for round := range 2 { // the second round is partly served by the cache
		vals, err := ref.Lookup(t.Context(), keys)
		if err != nil {
			t.Fatal(err)
		}
		for j, v := range vals {
			if j < n && (len(v) != 1 || v[0] != fmt.Sprint("val", j)) {
				t.Fatalf("round %d: key%d = %v", round, j, v)
			}
			if j >= n && v != nil {
				t.Fatalf("round %d: unknown key%d = %v", round, j, v)
			}
		}
	}
	// Values handed out are the caller's to change.
	vals, _ := ref.Lookup(t.Context(), []string{"key1"})
	vals[0][0] = "scribbled"
	if again, _ := ref.Lookup(t.Context(), []string{"key1"}); again[0][0] != "val1" {
		t.Fatalf("the cache kept a caller's change: %v", again)
	}
}

// A second process sees a new version as current at once, and the version
// it pinned before stays whole and is never served from another version's
// cache entries (finding 1 of issue 10: the old catalog looked for a new
// generation once a minute and deleted the one before at the next load).
func TestVersionsPinnedAcrossProcesses(t *testing.T) {
	db := newDB(t)
	loader := db.Catalog()
	reader := dynamoledger.New(awstest.Shared(t).Config(awstest.DynamoDB), db.Tables()).Catalog()
	v1 := load(t, loader, "20260101T000000.000001Z-r1", []string{"a", "1"})
	pinned, err := reader.Version(t.Context(), v1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := pinned.Lookup(t.Context(), []string{"a"}); err != nil || v[0][0] != "1" {
		t.Fatalf("version 1: %v, %v", v, err)
	}
	v2 := load(t, loader, "20260101T000000.000002Z-r2", []string{"a", "2"})
	load(t, loader, "20260101T000000.000003Z-r3", []string{"a", "3"})
	if cur, err := reader.Current(t.Context()); err != nil || cur.ID != "20260101T000000.000003Z-r3" {
		t.Fatalf("another process's Current = %v, %v; want r3 at once", cur.ID, err)
	}
	if v, _ := pinned.Lookup(t.Context(), []string{"a"}); v[0] == nil || v[0][0] != "1" {
		t.Fatalf("the pinned version after two loads = %v, want [1]", v)
	}
	ref2, err := reader.Version(t.Context(), v2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := ref2.Lookup(t.Context(), []string{"a"}); v[0][0] != "2" {
		t.Fatalf("version 2 through a cache that holds version 1's row = %v", v)
	}
	if err := loader.Delete(t.Context(), v1.ID); err != nil {
		t.Fatal(err)
	}
	out, err := db.Client().Scan(t.Context(), &dynamodb.ScanInput{TableName: aws.String(db.Tables().Reference)})
	if err != nil || out.Count != 3 {
		t.Fatalf("reference table holds %d items, want the catalog item + 2 versions' rows (%v)", out.Count, err)
	}
}

// TestConcurrentLoadsBothPublished: loads that finish together each
// publish their version; one of them is current.
func TestConcurrentLoadsBothPublished(t *testing.T) {
	db := newDB(t)
	var wg sync.WaitGroup
	ids := []string{"20260101T000000.000001Z-c1", "20260101T000000.000002Z-c2", "20260101T000000.000003Z-c3"}
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows := [][]string{{"a", id}}
			i := 0
			if _, err := db.Catalog().Load(t.Context(), sluice.RefSource{ID: id, Hash: id, Columns: []string{"k", "v"}, Next: func() ([]string, error) {
				if i == len(rows) {
					return nil, io.EOF
				}
				i++
				return rows[i-1], nil
			}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	c := db.Catalog()
	vs, err := c.Versions(t.Context())
	if err != nil || len(vs) != len(ids) {
		t.Fatalf("Versions = %+v, %v; want all %d", vs, err, len(ids))
	}
	cur, err := c.Current(t.Context())
	if err != nil || !slices.Contains(ids, cur.ID) {
		t.Fatalf("Current = %v, %v", cur.ID, err)
	}
}

// TestRecordTTL: with retention.records set, batch and reject items carry
// expiresAt (epoch seconds) that far ahead, which the tables' TTL acts on.
func TestRecordTTL(t *testing.T) {
	const ttl = 48 * time.Hour
	db := newDB(t, dynamoledger.WithRecordTTL(ttl))
	created := time.Now().UTC()
	if _, _, err := db.Ledger().CreateBatch(t.Context(), sluice.Batch{ID: "t1", Key: "input/t.csv", CreatedAt: created}); err != nil {
		t.Fatal(err)
	}
	if err := db.Ledger().AddRejects(t.Context(), "t1", []sluice.RowError{{Line: 2, Rule: "r"}}); err != nil {
		t.Fatal(err)
	}
	tb := db.Tables()
	for table, key := range map[string]map[string]types.AttributeValue{
		tb.Batches: {"id": &types.AttributeValueMemberS{Value: "t1"}},
		tb.Rejects: {"batchId": &types.AttributeValueMemberS{Value: "t1"}, "line": &types.AttributeValueMemberN{Value: "2"}},
	} {
		out, err := db.Client().GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: key})
		if err != nil {
			t.Fatal(err)
		}
		n, ok := out.Item["expiresAt"].(*types.AttributeValueMemberN)
		if !ok {
			t.Fatalf("%s: no expiresAt number: %v", table, out.Item)
		}
		got, _ := strconv.ParseInt(n.Value, 10, 64)
		if want := created.Add(ttl).Unix(); got < want-60 || got > want+60 {
			t.Fatalf("%s: expiresAt %d, want about %d", table, got, want)
		}
	}
	// Without a retention, nothing expires.
	plain := newDB(t)
	if _, _, err := plain.Ledger().CreateBatch(t.Context(), sluice.Batch{ID: "t2", Key: "input/t.csv"}); err != nil {
		t.Fatal(err)
	}
	out, _ := plain.Client().GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(plain.Tables().Batches), Key: map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: "t2"}}})
	if _, ok := out.Item["expiresAt"]; ok || out.Item == nil {
		t.Fatalf("without retention the item has expiresAt (or is missing): %v", out.Item)
	}
}

// A batch with more chunks than one item's done-chunk set can hold fails
// with a clear, permanent error at the first chunk past the bound and at
// SetTotal, and the chunks below the bound still count.
func TestChunkBoundIsPermanent(t *testing.T) {
	l := newDB(t).Ledger()
	l.CreateBatch(t.Context(), sluice.Batch{ID: "big", Key: "input/big.csv"})
	if c, err := l.ChunkDone(t.Context(), "big", sluice.ChunkStats{Chunk: dynamoledger.MaxChunks - 1, RowsOut: 1}); err != nil || !c.Counted {
		t.Fatalf("the last chunk under the bound: %+v, %v", c, err)
	}
	_, err := l.ChunkDone(t.Context(), "big", sluice.ChunkStats{Chunk: dynamoledger.MaxChunks, RowsOut: 1})
	if !sluice.IsPermanent(err) || !strings.Contains(err.Error(), "chunkRows") {
		t.Fatalf("chunk at the bound: %v, want a permanent error naming chunkRows", err)
	}
	if _, err := l.SetTotal(t.Context(), "big", dynamoledger.MaxChunks+1, 1); !sluice.IsPermanent(err) {
		t.Fatalf("SetTotal past the bound: %v, want a permanent error", err)
	}
	if b, _ := l.GetBatch(t.Context(), "big"); b.DoneChunks != 1 || b.TotalChunks >= 0 {
		t.Fatalf("batch after the refusals: done %d total %d", b.DoneChunks, b.TotalChunks)
	}
}

// A batch counted in another shard width, or in one item by an older
// version, cannot be finished by this ledger: its shards would never
// complete. Every call says so with a permanent error instead of hanging.
func TestOtherWidthIsPermanent(t *testing.T) {
	db := newDB(t, dynamoledger.WithShardWidth(4))
	if _, _, err := db.Ledger().CreateBatch(t.Context(), sluice.Batch{ID: "w4", Key: "input/w.csv"}); err != nil {
		t.Fatal(err)
	}
	// An item as the one-item counter wrote it: no shardWidth.
	_, err := db.Client().PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(db.Tables().Batches), Item: map[string]types.AttributeValue{
		"id": &types.AttributeValueMemberS{Value: "old"}, "state": &types.AttributeValueMemberS{Value: "processing"},
		"totalChunks": &types.AttributeValueMemberN{Value: "-1"}, "chunks": &types.AttributeValueMemberNS{Value: []string{"0"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	other := dynamoledger.New(awstest.Shared(t).Config(awstest.DynamoDB), db.Tables(), dynamoledger.WithShardWidth(8)).Ledger()
	for _, tc := range []struct {
		l  sluice.Ledger
		id string
	}{{other, "w4"}, {db.Ledger(), "old"}} {
		if _, err := tc.l.ChunkDone(t.Context(), tc.id, sluice.ChunkStats{Chunk: 1, RowsOut: 1}); !sluice.IsPermanent(err) || !strings.Contains(err.Error(), "shards of") {
			t.Errorf("ChunkDone on %s: %v, want a permanent error about the width", tc.id, err)
		}
		if _, err := tc.l.SetTotal(t.Context(), tc.id, 3, 3); !sluice.IsPermanent(err) {
			t.Errorf("SetTotal on %s: %v, want a permanent error", tc.id, err)
		}
	}
}

// The counter's items stay small whatever the batch's size: the batch
// item holds shard numbers and sums, never chunk numbers, and a shard at
// most DefaultShardWidth chunk numbers; consecutive chunks are spread over
// the 8 shards of their block. Shard items carry the batch's
// expiry and are not batches to ListBatches.
func TestCounterItemsStaySmall(t *testing.T) {
	db := newDB(t, dynamoledger.WithRecordTTL(time.Hour))
	l := db.Ledger()
	if _, _, err := l.CreateBatch(t.Context(), sluice.Batch{ID: "big", Key: "input/big.csv"}); err != nil {
		t.Fatal(err)
	}
	const lanes = 8 // a block of 8 shards, each full, then 88 chunks over the next 8
	const n = lanes*dynamoledger.DefaultShardWidth + 88
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var completed atomic.Int64
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := l.ChunkDone(t.Context(), "big", sluice.ChunkStats{Chunk: i, RowsIn: 3, RowsOut: 2, RowsRejected: 1})
			if err != nil {
				t.Error(err)
			}
			if c.Completed {
				completed.Add(1)
			}
		})
	}
	wg.Wait()
	if c, err := l.SetTotal(t.Context(), "big", n, 3*n); err != nil || !c.Completed {
		t.Fatalf("SetTotal after every chunk = %+v, %v; want it to complete the batch", c, err)
	}
	if completed.Load() != 0 {
		t.Fatalf("%d ChunkDones completed a batch whose total was unknown", completed.Load())
	}
	get := func(id string) map[string]types.AttributeValue {
		out, err := db.Client().GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(db.Tables().Batches),
			Key: map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: id}}})
		if err != nil || out.Item == nil {
			t.Fatalf("item %s: %v", id, err)
		}
		return out.Item
	}
	if _, ok := get("big")["chunks"].(*types.AttributeValueMemberNS); ok {
		t.Fatal("the batch item holds chunk numbers")
	}
	for k := range 2 * lanes {
		want := dynamoledger.DefaultShardWidth
		if k >= lanes {
			want = 88 / lanes
		}
		item := get(fmt.Sprintf("big#shard#%d", k))
		if set, _ := item["chunks"].(*types.AttributeValueMemberNS); set == nil || len(set.Value) != want {
			t.Fatalf("shard %d holds %v, want %d chunk numbers", k, item["chunks"], want)
		}
		if _, ok := item["expiresAt"]; !ok {
			t.Fatalf("shard %d has no expiresAt", k)
		}
	}
	bs, err := l.ListBatches(t.Context(), sluice.BatchFilter{})
	if err != nil || len(bs) != 1 || bs[0].DoneChunks != n || bs[0].RowsOut != 2*n || bs[0].RowsRejected != n || bs[0].ProcessAt.IsZero() {
		t.Fatalf("ListBatches = %+v, %v; want the one batch, complete", bs, err)
	}
}

// BatchFields (the worker's read, once per chunk) reads the batch item
// alone: while shards are in flight its counters are those of the complete
// shards, and once the batch is complete they are GetBatch's.
func TestBatchFieldsReadsOnlyTheBatch(t *testing.T) {
	l := newDB(t).Ledger()
	if _, _, err := l.CreateBatch(t.Context(), sluice.Batch{ID: "f", Key: "input/f.csv", RefVersion: "v1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ChunkDone(t.Context(), "f", sluice.ChunkStats{Chunk: 0, RowsOut: 5}); err != nil {
		t.Fatal(err)
	}
	f, err := l.BatchFields(t.Context(), "f")
	if err != nil || f.RefVersion != "v1" || f.DoneChunks != 0 {
		t.Fatalf("BatchFields in flight = %+v, %v; want the fields, no shard counted yet", f, err)
	}
	if b, _ := l.GetBatch(t.Context(), "f"); b.DoneChunks != 1 || b.RowsOut != 5 {
		t.Fatalf("GetBatch in flight: done %d out %d, want 1 and 5", b.DoneChunks, b.RowsOut)
	}
	if c, err := l.SetTotal(t.Context(), "f", 1, 5); err != nil || !c.Completed {
		t.Fatalf("SetTotal = %+v, %v", c, err)
	}
	if f, err := l.BatchFields(t.Context(), "f"); err != nil || f.DoneChunks != 1 || f.RowsOut != 5 || f.RowsIn != 5 {
		t.Fatalf("BatchFields complete = %+v, %v", f, err)
	}
	if _, err := l.BatchFields(t.Context(), "nope"); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("BatchFields(nope): %v, want ErrNotFound", err)
	}
}
