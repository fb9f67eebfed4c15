package dynamoledger

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Ledger is a sluice.Ledger in the batches and rejects tables.
//
// A batch is one item. Its counters (doneChunks, rowsOut, rowsRejected, and
// one "r#<rule>" attribute per rejection rule) change only through ADD in
// conditional UpdateItems: the chunks are counted in shard items beside it,
// and each complete shard's sums are added to it once (shards.go), so
// concurrent workers never lose each other's counts and a redelivered chunk
// is never counted twice.
type Ledger struct {
	db    *DB
	fault func(point string) error // WithFault
}

var _ sluice.Ledger = (*Ledger)(nil)

// Ledger returns the ledger on db's tables.
func (db *DB) Ledger() *Ledger { return &Ledger{db: db} }

// Per-state counts (CountByState) without a Scan. An unfinished batch
// carries its state twice, in "state" and in "openState", and the sparse
// index "unfinished" holds only the items with openState: counting the
// batches in one unfinished state reads that state's index entries, as
// many as there are batches in flight, never the table's history. A
// batch's final state is counted once, by the one UpdateItem that moved
// it there, in the counts item's "completed" and "failed" attributes.
//
// Without transactions (the emulator has none) that count is a second
// write: a crash between the two loses one count of a finished batch. The
// unfinished counts, which the stuck-batch alert reads, cannot drift.
const (
	countsID      = "#counts" // the counts item's id; batch IDs are hex
	openStateAttr = "openState"
	unfinishedIdx = "unfinished"
	expiresAtAttr = "expiresAt" // the tables' TTL attribute, epoch seconds
)

// reasonPrefix starts the attribute that counts one rule's rejections.
const reasonPrefix = "r#"

// timeFormat keeps nanoseconds, so a time read back is Equal to the one
// written.
const timeFormat = time.RFC3339Nano

func batchNotFound(id string) error {
	return fmt.Errorf("dynamodb: batch %q: %w", id, sluice.ErrNotFound)
}

func (l *Ledger) key(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"id": avS(id)}
}

// batchItem encodes every field of b but the chunk set.
func batchItem(b sluice.Batch) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		"id":           avS(b.ID),
		"bucket":       avS(b.Bucket),
		"key":          avS(b.Key),
		"name":         avS(b.Name),
		"size":         avN(b.Size),
		"etag":         avS(b.ETag),
		"sequence":     avS(b.Sequence),
		"state":        avS(string(b.State)),
		"totalChunks":  avN(int64(b.TotalChunks)),
		"doneChunks":   avN(int64(b.DoneChunks)),
		"rowsIn":       avN(int64(b.RowsIn)),
		"rowsOut":      avN(int64(b.RowsOut)),
		"rowsRejected": avN(int64(b.RowsRejected)),
	}
	for k, v := range fieldValues(b) {
		item[k] = v
	}
	for rule, n := range b.Reasons {
		item[reasonPrefix+rule] = avN(int64(n))
	}
	if !b.State.Terminal() {
		item[openStateAttr] = avS(string(b.State))
	}
	return item
}

// fieldValues are the attributes BatchUpdate can change, left out when
// empty.
func fieldValues(b sluice.Batch) map[string]types.AttributeValue {
	out := map[string]types.AttributeValue{}
	str := func(k, v string) {
		if v != "" {
			out[k] = avS(v)
		}
	}
	tm := func(k string, t time.Time) {
		if !t.IsZero() {
			out[k] = avS(t.UTC().Format(timeFormat))
		}
	}
	str("reason", b.Reason)
	str("outputKey", b.OutputKey)
	str("errorsKey", b.ErrorsKey)
	str("manifestKey", b.ManifestKey)
	str("emailId", b.EmailID)
	str("refVersion", b.RefVersion)
	str("configDigest", b.ConfigDigest)
	str("feed", b.Feed)
	str("traceId", b.TraceID)
	if b.Header != nil {
		// JSON rather than a list: a header may hold empty names, and a
		// string attribute carries them the same on every DynamoDB.
		h, _ := json.Marshal(b.Header)
		out["header"] = avS(string(h))
	}
	tm("createdAt", b.CreatedAt)
	tm("splitAt", b.SplitAt)
	tm("processedAt", b.ProcessAt)
	tm("mergedAt", b.MergedAt)
	tm("notifiedAt", b.NotifiedAt)
	tm("updatedAt", b.UpdatedAt)
	return out
}

func sameS(a, b types.AttributeValue) bool {
	as, ok1 := a.(*types.AttributeValueMemberS)
	bs, ok2 := b.(*types.AttributeValueMemberS)
	return ok1 && ok2 && as.Value == bs.Value
}

func getT(item map[string]types.AttributeValue, k string) time.Time {
	t, _ := time.Parse(timeFormat, getS(item, k))
	return t
}

func decodeBatch(item map[string]types.AttributeValue) sluice.Batch {
	b := sluice.Batch{
		ID:           getS(item, "id"),
		Bucket:       getS(item, "bucket"),
		Key:          getS(item, "key"),
		Name:         getS(item, "name"),
		Size:         getN(item, "size"),
		ETag:         getS(item, "etag"),
		Sequence:     getS(item, "sequence"),
		State:        sluice.State(getS(item, "state")),
		Reason:       getS(item, "reason"),
		TotalChunks:  totalOf(item),
		DoneChunks:   int(getN(item, "doneChunks")),
		RowsIn:       int(getN(item, "rowsIn")),
		RowsOut:      int(getN(item, "rowsOut")),
		RowsRejected: int(getN(item, "rowsRejected")),
		OutputKey:    getS(item, "outputKey"),
		ErrorsKey:    getS(item, "errorsKey"),
		ManifestKey:  getS(item, "manifestKey"),
		EmailID:      getS(item, "emailId"),
		RefVersion:   getS(item, "refVersion"),
		ConfigDigest: getS(item, "configDigest"),
		Feed:         getS(item, "feed"),
		TraceID:      getS(item, "traceId"),
		CreatedAt:    getT(item, "createdAt"),
		SplitAt:      getT(item, "splitAt"),
		ProcessAt:    getT(item, "processedAt"),
		MergedAt:     getT(item, "mergedAt"),
		NotifiedAt:   getT(item, "notifiedAt"),
		UpdatedAt:    getT(item, "updatedAt"),
	}
	b.Deliveries = decodeDeliveries(item)
	if h := getS(item, "header"); h != "" {
		json.Unmarshal([]byte(h), &b.Header)
	}
	for k := range item {
		if rule, ok := strings.CutPrefix(k, reasonPrefix); ok {
			if b.Reasons == nil {
				b.Reasons = map[string]int{}
			}
			b.Reasons[rule] = int(getN(item, k))
		}
	}
	if b.ProcessAt.IsZero() && complete(b.DoneChunks, b.TotalChunks) {
		// No one wrote processedAt: the batch's processing ended with the
		// later of its last chunk and its total, both of which are stamped
		// by the same update that counts them.
		b.ProcessAt = getT(item, "lastChunkAt")
		if t := getT(item, "totalAt"); t.After(b.ProcessAt) {
			b.ProcessAt = t
		}
	}
	return b
}

func complete(done, total int) bool { return total >= 0 && done >= total }

// CreateBatch implements sluice.Ledger with a PutItem that only succeeds
// when no item has the ID.
func (l *Ledger) CreateBatch(ctx context.Context, b sluice.Batch) (sluice.Batch, bool, error) {
	now := time.Now().UTC()
	if b.CreatedAt.IsZero() {
		b.CreatedAt = now
	}
	b.UpdatedAt = now
	if b.State == "" {
		b.State = sluice.StateSplitting
	}
	if b.TotalChunks == 0 {
		b.TotalChunks = -1
	}
	item := batchItem(b)
	item[layoutAttr] = avS(l.layout())
	poisonOldCounter(item)
	if l.db.opt.RecordTTL > 0 {
		item[expiresAtAttr] = avN(b.CreatedAt.Add(l.db.opt.RecordTTL).Unix())
	}
	_, err := l.db.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(l.db.tables.Batches),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(id)"),
	})
	if isConditionFailed(err) {
		old, err := l.GetBatch(ctx, b.ID)
		return old, false, err
	}
	if err != nil {
		return sluice.Batch{}, false, fmt.Errorf("dynamodb: create batch %q: %w", b.ID, err)
	}
	if b.State.Terminal() {
		if err := l.countFinal(ctx, b.State); err != nil {
			return b, true, err
		}
	}
	return b, true, nil
}

// countFinal counts one batch that reached a final state.
func (l *Ledger) countFinal(ctx context.Context, s sluice.State) error {
	_, err := l.db.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.db.tables.Batches),
		Key:                       l.key(countsID),
		UpdateExpression:          aws.String("ADD #s :one"),
		ExpressionAttributeNames:  map[string]string{"#s": string(s)},
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": avN(1)},
	})
	if err != nil {
		return fmt.Errorf("dynamodb: counting a %s batch: %w", s, err)
	}
	return nil
}

// CountByState implements sluice.Ledger: the final states from the counts
// item, each unfinished state by a COUNT query on the sparse index.
func (l *Ledger) CountByState(ctx context.Context) (map[sluice.State]int, error) {
	out := map[sluice.State]int{}
	item, err := l.db.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.db.tables.Batches), Key: l.key(countsID), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("dynamodb: count by state: %w", err)
	}
	for _, s := range []sluice.State{sluice.StateCompleted, sluice.StateFailed} {
		if n := getN(item.Item, string(s)); n > 0 {
			out[s] = int(n)
		}
	}
	for _, s := range []sluice.State{sluice.StateSplitting, sluice.StateProcessing, sluice.StateMerging, sluice.StateNotifying} {
		in := &dynamodb.QueryInput{
			TableName:                 aws.String(l.db.tables.Batches),
			IndexName:                 aws.String(unfinishedIdx),
			KeyConditionExpression:    aws.String("#o = :s"),
			ExpressionAttributeNames:  map[string]string{"#o": openStateAttr},
			ExpressionAttributeValues: map[string]types.AttributeValue{":s": avS(string(s))},
			Select:                    types.SelectCount,
		}
		p := dynamodb.NewQueryPaginator(l.db.client, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("dynamodb: count %s batches: %w", s, err)
			}
			if page.Count > 0 {
				out[s] += int(page.Count)
			}
		}
	}
	return out, nil
}

func (l *Ledger) getItem(ctx context.Context, id string) (map[string]types.AttributeValue, error) {
	out, err := l.db.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.db.tables.Batches), Key: l.key(id), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("dynamodb: get batch %q: %w", id, err)
	}
	if out.Item == nil {
		return nil, batchNotFound(id)
	}
	return out.Item, nil
}

// GetBatch implements sluice.Ledger.
func (l *Ledger) GetBatch(ctx context.Context, id string) (sluice.Batch, error) {
	item, err := l.getItem(ctx, id)
	if err != nil {
		return sluice.Batch{}, err
	}
	b := decodeBatch(item)
	err = l.addInFlight(ctx, []*sluice.Batch{&b}, []map[string]types.AttributeValue{item})
	return b, err
}

// BatchFields implements sluice.BatchFieldsReader: the batch item alone,
// its counters those of its complete shards (exact once it is complete).
// The worker reads it once per chunk, before counting the chunk, so an
// unfinished batch counted in another layout is refused here on every
// chunk (a permanent error), not only on the first of each shard, where
// ChunkDone checks the layout. A finished one is returned: its late chunks
// are ignored.
func (l *Ledger) BatchFields(ctx context.Context, id string) (sluice.Batch, error) {
	item, err := l.getItem(ctx, id)
	if err != nil {
		return sluice.Batch{}, err
	}
	b := decodeBatch(item)
	if !b.State.Terminal() {
		if err := l.checkLayout(id, item); err != nil {
			return sluice.Batch{}, err
		}
	}
	return b, nil
}

// ListBatches implements sluice.Ledger with a consistent Scan sorted here;
// a secondary index would answer only eventually, and a batch just created
// could be missing from it. The table also holds the counter's shard items
// (about one per 256 chunks of each batch that ran) and the counts item.
// The filter leaves them out server-side, so they are not sent, but a Scan
// is charged for every item it reads before filtering: a listing costs
// read units for the batches and their shards alike, which a retention
// (RecordTTL) bounds (docs/capacity.md).
func (l *Ledger) ListBatches(ctx context.Context, f sluice.BatchFilter) ([]sluice.Batch, error) {
	in := &dynamodb.ScanInput{TableName: aws.String(l.db.tables.Batches), ConsistentRead: aws.Bool(true)}
	conds := []string{"attribute_not_exists(#shardOf)", "id <> :counts"}
	names := map[string]string{"#shardOf": shardOfAttr}
	values := map[string]types.AttributeValue{":counts": avS(countsID)}
	if f.State != "" {
		conds = append(conds, "#state = :state")
		names["#state"], values[":state"] = "state", avS(string(f.State))
	}
	if f.Key != "" {
		conds = append(conds, "#key = :key")
		names["#key"], values[":key"] = "key", avS(f.Key)
	}
	in.FilterExpression = aws.String(strings.Join(conds, " AND "))
	in.ExpressionAttributeNames, in.ExpressionAttributeValues = names, values
	var out []sluice.Batch
	items := map[string]map[string]types.AttributeValue{}
	p := dynamodb.NewScanPaginator(l.db.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("dynamodb: list batches: %w", err)
		}
		for _, item := range page.Items {
			if getS(item, "id") != countsID && getS(item, shardOfAttr) == "" {
				out = append(out, decodeBatch(item))
				items[getS(item, "id")] = item
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	if f.FieldsOnly {
		return out, nil
	}
	// Only running batches get their shards in flight added: a failed
	// batch keeps its unfinished shards for good, and reading them on every
	// listing would cost a read per shard per batch of all history.
	var bs []*sluice.Batch
	var its []map[string]types.AttributeValue
	for i := range out {
		if !out[i].State.Terminal() {
			bs, its = append(bs, &out[i]), append(its, items[out[i].ID])
		}
	}
	if err := l.addInFlight(ctx, bs, its); err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateBatch implements sluice.Ledger. sluice.ApplyUpdate decides what
// changes, as for every ledger; the write is conditional on the state it
// was decided from, and is decided again if another writer moved the state
// in between. Only the fields the update changes are written, so neither
// the counters that ChunkDone adds to nor a field another update just set
// are overwritten.
func (l *Ledger) UpdateBatch(ctx context.Context, id string, u sluice.BatchUpdate) (sluice.Batch, error) {
	for attempt := 0; ; attempt++ {
		item, err := l.getItem(ctx, id) // the fields, not the shards' counts
		if err != nil {
			return sluice.Batch{}, err
		}
		old := decodeBatch(item)
		if u.OnlyIfNotTerminal && old.State.Terminal() {
			return old, nil
		}
		b := old
		sluice.ApplyUpdate(&b, u)
		b.UpdatedAt = time.Now().UTC()
		names := map[string]string{"#state": "state"}
		values := map[string]types.AttributeValue{":old": avS(string(old.State)), ":state": avS(string(b.State))}
		sets := []string{"#state = :state"}
		before := fieldValues(old)
		for k, v := range fieldValues(b) {
			// Only what this update changes: rewriting the rest from a
			// snapshot could undo a concurrent update of another field.
			if k == "createdAt" || (k != "updatedAt" && sameS(before[k], v)) {
				continue
			}
			names["#"+k] = k
			values[":"+k] = v
			sets = append(sets, "#"+k+" = :"+k)
		}
		slices.Sort(sets[1:]) // a stable expression reads better in logs
		expr := "SET " + strings.Join(sets, ", ")
		if b.State != old.State {
			// The sparse index follows the state (see countsID).
			names["#open"] = openStateAttr
			if b.State.Terminal() {
				expr += " REMOVE #open"
			} else {
				values[":open"] = avS(string(b.State))
				expr += ", #open = :open"
			}
		}
		out, err := l.db.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(l.db.tables.Batches),
			Key:                       l.key(id),
			UpdateExpression:          aws.String(expr),
			ConditionExpression:       aws.String("#state = :old"),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: values,
			ReturnValues:              types.ReturnValueAllNew,
		})
		if isConditionFailed(err) && attempt < 20 {
			continue // the state moved (or the batch went): decide again
		}
		if err != nil {
			return sluice.Batch{}, fmt.Errorf("dynamodb: update batch %q: %w", id, err)
		}
		// Only this call moved the batch from old.State (the condition).
		if b.State != old.State && b.State.Terminal() {
			if err := l.countFinal(ctx, b.State); err != nil {
				return decodeBatch(out.Attributes), err
			}
		}
		return decodeBatch(out.Attributes), nil
	}
}

// rejectKey is a rejected row's primary key.
func (l *Ledger) rejectKey(id string, line int64) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"batchId": avS(id), "line": avN(line)}
}

// AddRejects implements sluice.Ledger with BatchWriteItem, 25 rows a call.
// A row is keyed by its line, so writing it again replaces it; a line twice
// in one call is sent once, since DynamoDB refuses a batch that names a key
// twice.
func (l *Ledger) AddRejects(ctx context.Context, id string, rows []sluice.RowError) error {
	byLine := make(map[int64]sluice.RowError, len(rows))
	for _, r := range rows {
		byLine[r.Line] = r
	}
	lines := slices.Sorted(maps.Keys(byLine))
	ttl := l.db.opt.RecordTTL
	expires := avN(time.Now().Add(ttl).Unix())
	for len(lines) > 0 {
		n := min(len(lines), 25)
		reqs := make([]types.WriteRequest, 0, n)
		for _, line := range lines[:n] {
			r := byLine[line]
			item := l.rejectKey(id, line)
			item["chunk"] = avN(int64(r.Chunk))
			item["column"] = avS(r.Column)
			item["rule"] = avS(r.Rule)
			item["message"] = avS(r.Message)
			item["raw"] = avS(r.Raw)
			if ttl > 0 {
				item[expiresAtAttr] = expires
			}
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
		}
		if err := l.db.writeBatch(ctx, l.db.tables.Rejects, reqs); err != nil {
			return fmt.Errorf("dynamodb: add rejects of batch %q: %w", id, err)
		}
		lines = lines[n:]
	}
	return nil
}

// Rejects implements sluice.Ledger with a Query on the line sort key.
func (l *Ledger) Rejects(ctx context.Context, id string, afterLine int64, limit int) ([]sluice.RowError, error) {
	if limit <= 0 {
		limit = 100
	}
	in := &dynamodb.QueryInput{
		TableName:              aws.String(l.db.tables.Rejects),
		KeyConditionExpression: aws.String("batchId = :id AND #line > :after"),
		ExpressionAttributeNames: map[string]string{
			"#line": "line", // LINE is not reserved today; the name costs nothing
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": avS(id), ":after": avN(afterLine)},
		ConsistentRead:            aws.Bool(true),
	}
	var out []sluice.RowError
	for len(out) < limit {
		in.Limit = aws.Int32(int32(limit - len(out)))
		page, err := l.db.client.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("dynamodb: rejects of batch %q: %w", id, err)
		}
		for _, item := range page.Items {
			out = append(out, sluice.RowError{
				BatchID: id,
				Chunk:   int(getN(item, "chunk")),
				Line:    getN(item, "line"),
				Column:  getS(item, "column"),
				Rule:    getS(item, "rule"),
				Message: getS(item, "message"),
				Raw:     getS(item, "raw"),
			})
		}
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	return out, nil
}
