package dynamoledger

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/pkg/fault"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// The batch counter is sharded. One item that took every ChunkDone held
// a set of done chunks that grew with the file: every write cost one WCU
// per KB of it, all on one partition (1,000 WCU/s), so the counter, not
// the workers, set the time of a 100M-row file (docs/capacity.md).
//
// Chunk c is counted in a shard item "<batch>#shard#<k>", each its own
// partition key, and no shard holds more than width chunk numbers (~1 KB
// at 256). Chunks end roughly in order, so consecutive chunks go to
// different shards: the chunks are cut in blocks of width×lanes, and chunk
// c of a block goes to its lane c mod lanes, so at any moment the writes
// of the chunks in flight spread over lanes items (and the partitions
// they hash to) instead of all landing on one. ChunkDone is two steps,
// without transactions (dynalite has none, and they cost twice):
//
//  1. a conditional UpdateItem on the shard: ADD the chunk to its set and
//     its stats to the shard's sums, unless the set holds it (a repeat);
//  2. only for the write that completes the shard (width chunks, or the
//     count SetTotal wrote on a partial shard of the last block): a
//     conditional UpdateItem on the batch item that ADDs the shard number
//     to the "shardsDone" set and the shard's final sums to the batch's
//     counters, unless the set holds it.
//
// Each step counts once by set semantics. A crash between them leaves the
// chunk counted in its shard and the batch not told; the redelivered
// ChunkDone finds its chunk in the shard (step 1 refused) and re-attempts
// step 2 from the shard as read back, which is final once the shard is
// complete. The batch's doneChunks grows by a whole shard in one write and
// the total is set once, so exactly one write makes doneChunks equal the
// total, and only its caller sees Completed.
//
// The batch item also keeps "shardsSeen" (added by the first chunk of each
// shard, a write per shard), so GetBatch can add the sums of the shards
// still in flight and report exact counts while the batch runs.
const (
	// DefaultShardWidth is how many chunks one shard item counts: its set
	// stays near 1 KB, so a write costs 1 or 2 WCU.
	DefaultShardWidth = 256
	// shardLanes is how many shards the chunks in flight spread over.
	shardLanes = 8
	// maxShards bounds the shard numbers the batch item lists, twice (seen
	// and done). The item limit (400 KB) would allow 20,000, but the worker
	// reads the batch item, consistently, once per chunk (BatchFields): at
	// 20,000 shards the sets weigh 160 KB, 40 read units a read, and one
	// partition's 3,000 units a second would let a batch's chunks end at 75
	// a second. 1,000 shards keep the item under 10 KB (3 units a read,
	// 1,000 chunks a second; bench/cmd/capsim, docs/capacity.md).
	maxShards = 1_000
	// MaxChunks bounds the chunks of one batch at the default width.
	MaxChunks = maxShards * DefaultShardWidth

	shardOfAttr    = "shardOf" // on shard items only: the batch's ID
	shardNoAttr    = "shardNo"
	layoutAttr     = "shardLayout" // on batch items: "<width>x<lanes>", how they are counted
	seenAttr       = "shardsSeen"
	doneShardsAttr = "shardsDone"
	expectedAttr   = "expected" // on a partial shard of the last block: its chunk count
)

func shardID(batch string, k int) string { return batch + "#shard#" + strconv.Itoa(k) }

// shard is a shard item as read back.
type shard struct {
	k, done, expected     int
	rowsOut, rowsRejected int
	reasons               map[string]int
}

func decodeShard(item map[string]types.AttributeValue) shard {
	sh := shard{
		k:            int(getN(item, shardNoAttr)),
		done:         int(getN(item, "doneChunks")),
		expected:     int(getN(item, expectedAttr)),
		rowsOut:      int(getN(item, "rowsOut")),
		rowsRejected: int(getN(item, "rowsRejected")),
		reasons:      map[string]int{},
	}
	for k := range item {
		if rule, ok := strings.CutPrefix(k, reasonPrefix); ok {
			sh.reasons[rule] = int(getN(item, k))
		}
	}
	return sh
}

// complete: every chunk of the shard is counted, so its sums are final.
func (sh shard) complete(width int) bool {
	if sh.expected > 0 {
		return sh.done == sh.expected
	}
	return sh.done == width
}

func (l *Ledger) width() int {
	if w := l.db.opt.ShardWidth; w > 0 {
		return w
	}
	return DefaultShardWidth
}

func (l *Ledger) maxChunks() int { return maxShards * l.width() }

// layout names how this ledger shards a batch's counter; a batch records
// it when created, and only a ledger of the same layout may count it.
func (l *Ledger) layout() string { return fmt.Sprintf("%dx%d", l.width(), shardLanes) }

// shardOf is the shard that counts chunk c.
func (l *Ledger) shardOf(c int) int {
	block := c / (l.width() * shardLanes)
	return block*shardLanes + c%shardLanes
}

// partialShards are the shards of a batch of total chunks that hold fewer
// than width chunks (all in the last block), with their counts.
func (l *Ledger) partialShards(total int) map[int]int {
	w := l.width()
	block := w * shardLanes
	rest := total % block
	out := map[int]int{}
	for lane := range shardLanes {
		n := rest / shardLanes
		if lane < rest%shardLanes {
			n++
		}
		if n > 0 && n < w {
			out[total/block*shardLanes+lane] = n
		}
	}
	return out
}

// WithFault returns the ledger calling f at fault.PointLedgerAfterShard,
// between a shard's completing write and the batch's (for the crash
// tests; f as in pipeline.Deps.Fault).
func (l *Ledger) WithFault(f func(point string) error) sluice.Ledger {
	c := *l
	c.fault = f
	return &c
}

func (l *Ledger) faultAt(p string) error {
	if l.fault == nil {
		return nil
	}
	if err := l.fault(p); err != nil {
		return fmt.Errorf("fault injected at %s: %w", p, err)
	}
	return nil
}

func tooManyChunks(id string, chunk, limit int) error {
	return sluice.Permanentf("dynamodb: batch %q: chunk %d is past the %d chunks one batch can count (%d shards, whose numbers the batch item lists; the worker reads that item once per chunk); raise chunkRows so the file splits into fewer chunks (docs/capacity.md)", id, chunk, limit, maxShards)
}

// ChunkDone implements sluice.Ledger: the chunk is counted in its shard,
// and the shard in the batch when this write completed it (see above).
// A chunk that does not complete its shard reports only its shard's count
// in Done, with Total -1: the batch item is not read on that path, which
// is what keeps it off the hot path.
func (l *Ledger) ChunkDone(ctx context.Context, id string, s sluice.ChunkStats) (sluice.Completion, error) {
	if s.Chunk < 0 || s.Chunk >= l.maxChunks() {
		return sluice.Completion{}, tooManyChunks(id, s.Chunk, l.maxChunks())
	}
	k := l.shardOf(s.Chunk)
	sh, counted, err := l.countInShard(ctx, id, k, s)
	if err != nil {
		return sluice.Completion{}, err
	}
	if !counted {
		return l.repeat(ctx, id, k)
	}
	if sh.done == 1 {
		if err := l.markSeen(ctx, id, k); err != nil {
			return sluice.Completion{}, err
		}
	}
	if !sh.complete(l.width()) {
		return sluice.Completion{Counted: true, Done: sh.done, Total: -1}, nil
	}
	if err := l.faultAt(fault.PointLedgerAfterShard); err != nil {
		return sluice.Completion{}, err
	}
	c, err := l.addShard(ctx, id, sh)
	c.Counted = err == nil
	return c, err
}

// countInShard adds the chunk and its stats to shard k, unless the shard
// holds the chunk already (counted false).
func (l *Ledger) countInShard(ctx context.Context, id string, k int, s sluice.ChunkStats) (shard, bool, error) {
	adds := []string{"chunks :c", "doneChunks :one", "rowsOut :out", "rowsRejected :rej"}
	names, values := reasonAdds(s.Reasons, &adds)
	values[":c"] = &types.AttributeValueMemberNS{Value: []string{strconv.Itoa(s.Chunk)}}
	values[":n"] = avN(int64(s.Chunk))
	values[":one"] = avN(1)
	values[":out"] = avN(int64(s.RowsOut))
	values[":rej"] = avN(int64(s.RowsRejected))
	expr := "ADD " + strings.Join(adds, ", ") + " " + l.shardSets(id, k, values)
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.db.tables.Batches),
		Key:                       l.key(shardID(id, k)),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("NOT contains(chunks, :n)"),
		ExpressionAttributeValues: values,
		ReturnValues:              types.ReturnValueAllNew,
	}
	if len(names) > 0 {
		in.ExpressionAttributeNames = names
	}
	out, err := l.db.client.UpdateItem(ctx, in)
	if isConditionFailed(err) {
		return shard{}, false, nil
	}
	if err != nil {
		return shard{}, false, fmt.Errorf("dynamodb: chunk %d of batch %q: %w", s.Chunk, id, err)
	}
	return decodeShard(out.Attributes), true, nil
}

// shardSets is the SET clause every write of a shard carries: what names
// the shard (so ListBatches can skip it) and, with a retention, its expiry.
func (l *Ledger) shardSets(id string, k int, values map[string]types.AttributeValue) string {
	values[":of"], values[":k"] = avS(id), avN(int64(k))
	expr := "SET " + shardOfAttr + " = :of, " + shardNoAttr + " = :k"
	if ttl := l.db.opt.RecordTTL; ttl > 0 {
		values[":exp"] = avN(time.Now().Add(ttl).Unix())
		expr += ", " + expiresAtAttr + " = if_not_exists(" + expiresAtAttr + ", :exp)"
	}
	return expr
}

// reasonAdds appends an ADD term per non-zero rule count to adds and
// returns the placeholders, since a rule's name may hold any character.
func reasonAdds(reasons map[string]int, adds *[]string) (map[string]string, map[string]types.AttributeValue) {
	names := map[string]string{}
	values := map[string]types.AttributeValue{}
	for i, rule := range slices.Sorted(maps.Keys(reasons)) {
		if reasons[rule] == 0 {
			continue
		}
		n, v := "#r"+strconv.Itoa(i), ":r"+strconv.Itoa(i)
		names[n], values[v] = reasonPrefix+rule, avN(int64(reasons[rule]))
		*adds = append(*adds, n+" "+v)
	}
	return names, values
}

// repeat answers a ChunkDone whose chunk its shard already holds. The
// first call may have died after the shard's write, so the steps that
// follow it are taken again; each is idempotent.
func (l *Ledger) repeat(ctx context.Context, id string, k int) (sluice.Completion, error) {
	sh, err := l.getShard(ctx, id, k)
	if err != nil {
		return sluice.Completion{}, err
	}
	if err := l.markSeen(ctx, id, k); err != nil {
		return sluice.Completion{}, err
	}
	if sh.complete(l.width()) {
		return l.addShard(ctx, id, sh)
	}
	return l.progress(ctx, id)
}

// progress reports a batch without changing it. Complete is judged on the
// batch item alone, whose doneChunks only the shards' final additions
// move: a shard that is complete but not yet added must keep the batch
// incomplete, or the call that adds it would not be told to complete it.
// Done adds the shards in flight, as GetBatch does.
func (l *Ledger) progress(ctx context.Context, id string) (sluice.Completion, error) {
	item, err := l.checkedItem(ctx, id)
	if err != nil {
		return sluice.Completion{}, err
	}
	b := decodeBatch(item)
	c := sluice.Completion{Total: b.TotalChunks, Complete: complete(b.DoneChunks, b.TotalChunks)}
	err = l.addInFlight(ctx, []*sluice.Batch{&b}, []map[string]types.AttributeValue{item})
	c.Done = b.DoneChunks
	return c, err
}

func (l *Ledger) getShard(ctx context.Context, id string, k int) (shard, error) {
	out, err := l.db.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.db.tables.Batches), Key: l.key(shardID(id, k)), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return shard{}, fmt.Errorf("dynamodb: shard %d of batch %q: %w", k, id, err)
	}
	sh := decodeShard(out.Item)
	sh.k = k
	return sh, nil
}

// ChunkCounted implements sluice.ChunkChecker: one consistent read of the
// chunk's shard, whose set only grows.
func (l *Ledger) ChunkCounted(ctx context.Context, id string, chunk int) (bool, error) {
	if chunk < 0 || chunk >= l.maxChunks() {
		return false, nil
	}
	out, err := l.db.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.db.tables.Batches), Key: l.key(shardID(id, l.shardOf(chunk))),
		ConsistentRead: aws.Bool(true), ProjectionExpression: aws.String("chunks"),
	})
	if err != nil {
		return false, fmt.Errorf("dynamodb: chunk %d of batch %q counted: %w", chunk, id, err)
	}
	set, ok := out.Item["chunks"].(*types.AttributeValueMemberNS)
	if !ok {
		return false, nil
	}
	for _, v := range set.Value {
		if n, err := strconv.Atoi(v); err == nil && n == chunk {
			return true, nil
		}
	}
	return false, nil
}

// markSeen lists shard k on the batch item, for GetBatch. It is also
// where a chunk of a batch that does not exist is refused.
func (l *Ledger) markSeen(ctx context.Context, id string, k int) error {
	_, err := l.db.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(l.db.tables.Batches),
		Key:                 l.key(id),
		UpdateExpression:    aws.String("ADD " + seenAttr + " :ks"),
		ConditionExpression: aws.String("attribute_exists(id) AND " + layoutAttr + " = :lay"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":ks":  &types.AttributeValueMemberNS{Value: []string{strconv.Itoa(k)}},
			":lay": avS(l.layout()),
		},
	})
	if isConditionFailed(err) {
		_, err = l.checkedItem(ctx, id)
		if err == nil {
			return nil // the item changed in between; nothing to add
		}
		return err
	}
	if err != nil {
		return fmt.Errorf("dynamodb: shard %d of batch %q: %w", k, id, err)
	}
	return nil
}

// checkedItem reads the batch item and refuses one counted in another
// width, which this ledger's shards would never complete.
func (l *Ledger) checkedItem(ctx context.Context, id string) (map[string]types.AttributeValue, error) {
	item, err := l.getItem(ctx, id)
	if err != nil {
		return nil, err
	}
	return item, l.checkLayout(id, item)
}

// checkLayout refuses a batch item counted in another layout (a permanent
// error: no process of this version can finish it).
func (l *Ledger) checkLayout(id string, item map[string]types.AttributeValue) error {
	if lay := getS(item, layoutAttr); lay != l.layout() {
		if lay == "" {
			lay = "one item, by an older version"
		}
		return sluice.Permanentf("dynamodb: batch %q counts its chunks in shards of %s; this ledger counts in shards of %s, so it cannot finish the batch: every process on a table must run the same version (upload the file again to start a new batch)", id, lay, l.layout())
	}
	return nil
}

// addShard adds a complete shard's final sums to the batch item, once.
// The call whose write makes doneChunks reach a known total is the one
// that reports Completed.
func (l *Ledger) addShard(ctx context.Context, id string, sh shard) (sluice.Completion, error) {
	adds := []string{doneShardsAttr + " :ks", seenAttr + " :ks", "doneChunks :done", "rowsOut :out", "rowsRejected :rej"}
	names, values := reasonAdds(sh.reasons, &adds)
	values[":ks"] = &types.AttributeValueMemberNS{Value: []string{strconv.Itoa(sh.k)}}
	values[":k"] = avN(int64(sh.k))
	values[":lay"] = avS(l.layout())
	values[":done"] = avN(int64(sh.done))
	values[":out"] = avN(int64(sh.rowsOut))
	values[":rej"] = avN(int64(sh.rowsRejected))
	values[":now"] = avS(time.Now().UTC().Format(timeFormat))
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.db.tables.Batches),
		Key:                       l.key(id),
		UpdateExpression:          aws.String("ADD " + strings.Join(adds, ", ") + " SET lastChunkAt = :now, updatedAt = :now"),
		ConditionExpression:       aws.String("attribute_exists(id) AND " + layoutAttr + " = :lay AND NOT contains(" + doneShardsAttr + ", :k)"),
		ExpressionAttributeValues: values,
		ReturnValues:              types.ReturnValueAllNew,
	}
	if len(names) > 0 {
		in.ExpressionAttributeNames = names
	}
	out, err := l.db.client.UpdateItem(ctx, in)
	if isConditionFailed(err) {
		return l.progress(ctx, id) // added before: report, never complete
	}
	if err != nil {
		return sluice.Completion{}, fmt.Errorf("dynamodb: shard %d of batch %q: %w", sh.k, id, err)
	}
	done, total := int(getN(out.Attributes, "doneChunks")), totalOf(out.Attributes)
	return sluice.Completion{
		Done: done, Total: total,
		Complete:  complete(done, total),
		Completed: total >= 0 && done == total,
	}, nil
}

// SetTotal implements sluice.Ledger. The total is set once, on condition
// that it is unknown; then, when the last shard is partial, its chunk
// count is written on it, and if its chunks are all done already the
// shard is added to the batch here. A repeated call takes those steps
// again (the first may have died between them) and reports Completed only
// if its own write completed the batch.
func (l *Ledger) SetTotal(ctx context.Context, id string, chunks, rows int) (sluice.Completion, error) {
	if chunks > l.maxChunks() {
		return sluice.Completion{}, tooManyChunks(id, chunks-1, l.maxChunks())
	}
	c, err := l.setTotal(ctx, id, chunks, rows)
	if err != nil || c.Complete {
		return c, err
	}
	partial := l.partialShards(chunks)
	for _, k := range slices.Sorted(maps.Keys(partial)) {
		sh, err := l.expectLast(ctx, id, k, partial[k])
		if err != nil {
			return sluice.Completion{}, err
		}
		if !sh.complete(l.width()) {
			continue
		}
		if err := l.faultAt(fault.PointLedgerAfterShard); err != nil {
			return sluice.Completion{}, err
		}
		added, err := l.addShard(ctx, id, sh)
		if err != nil {
			return sluice.Completion{}, err
		}
		added.Completed = added.Completed || c.Completed
		c = added
	}
	return c, nil
}

// setTotal is SetTotal's write on the batch item.
func (l *Ledger) setTotal(ctx context.Context, id string, chunks, rows int) (sluice.Completion, error) {
	now := avS(time.Now().UTC().Format(timeFormat))
	// REMOVE: the scan split's set of counted ranges is done with once the
	// total is known (scan.go), and every per-chunk read would pay for it.
	out, err := l.db.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(l.db.tables.Batches),
		Key:                 l.key(id),
		UpdateExpression:    aws.String("SET totalChunks = :total, rowsIn = :rows, totalAt = :now, updatedAt = :now REMOVE " + scanRangesAttr),
		ConditionExpression: aws.String("attribute_exists(id) AND (totalChunks = :unknown OR totalChunks < :zero) AND " + layoutAttr + " = :lay"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":total": avN(int64(chunks)), ":rows": avN(int64(rows)), ":now": now, ":zero": avN(0),
			":lay": avS(l.layout()), ":unknown": avN(unknownTotal),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if isConditionFailed(err) {
		c, err := l.progress(ctx, id)
		if err == nil && c.Total != chunks {
			err = fmt.Errorf("dynamodb: batch %q: total already set to %d chunks, now %d", id, c.Total, chunks)
		}
		return c, err
	}
	if err != nil {
		return sluice.Completion{}, fmt.Errorf("dynamodb: set total of batch %q: %w", id, err)
	}
	done := int(getN(out.Attributes, "doneChunks"))
	c := sluice.Completion{Done: done, Total: chunks, Complete: complete(done, chunks)}
	c.Completed = c.Complete
	return c, nil
}

// expectLast writes the chunk count of partial shard k (of the last block)
// on it.
func (l *Ledger) expectLast(ctx context.Context, id string, k, n int) (shard, error) {
	values := map[string]types.AttributeValue{":e": avN(int64(n))}
	expr := l.shardSets(id, k, values) + ", #e = :e"
	out, err := l.db.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.db.tables.Batches),
		Key:                       l.key(shardID(id, k)),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("attribute_not_exists(#e) OR #e = :e"),
		ExpressionAttributeNames:  map[string]string{"#e": expectedAttr},
		ExpressionAttributeValues: values,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if isConditionFailed(err) {
		return shard{}, fmt.Errorf("dynamodb: batch %q: shard %d already expects another number of chunks than %d", id, k, n)
	}
	if err != nil {
		return shard{}, fmt.Errorf("dynamodb: last shard of batch %q: %w", id, err)
	}
	return decodeShard(out.Attributes), nil
}

func getNS(item map[string]types.AttributeValue, k string) []int {
	v, ok := item[k].(*types.AttributeValueMemberNS)
	if !ok {
		return nil
	}
	out := make([]int, 0, len(v.Value))
	for _, s := range v.Value {
		n, _ := strconv.Atoi(s)
		out = append(out, n)
	}
	return out
}

// addInFlight adds to each unfinished batch the sums of its shards that
// are seen but not yet added to it, so that progress is exact while a
// batch runs. A shard that completes between the two reads is counted
// once: the batch item was read without it, the shard with it.
//
// One GetItem per shard, several at once: chunks are taken roughly in
// order and a block's chunks spread over its shardLanes shards, so a
// running batch has about 8 shards in flight (up to 16 where the chunks
// in flight straddle two blocks), and GetItem is what every service may
// already call on the table (no new IAM action for a BatchGetItem).
// ListBatches calls it for running batches only; GetBatch for its one
// batch, whatever its state.
func (l *Ledger) addInFlight(ctx context.Context, bs []*sluice.Batch, items []map[string]types.AttributeValue) error {
	type pending struct {
		b *sluice.Batch
		k int
	}
	var todo []pending
	for i, b := range bs {
		if getS(items[i], layoutAttr) == "" || complete(b.DoneChunks, b.TotalChunks) {
			continue
		}
		done := getNS(items[i], doneShardsAttr)
		for _, k := range getNS(items[i], seenAttr) {
			if !slices.Contains(done, k) {
				todo = append(todo, pending{b, k})
			}
		}
	}
	shards := make([]shard, len(todo))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(l.db.opt.Concurrency)
	for i, p := range todo {
		g.Go(func() (err error) {
			shards[i], err = l.getShard(gctx, p.b.ID, p.k)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, p := range todo {
		b, sh := p.b, shards[i]
		b.DoneChunks += sh.done
		b.RowsOut += sh.rowsOut
		b.RowsRejected += sh.rowsRejected
		for rule, n := range sh.reasons {
			if b.Reasons == nil {
				b.Reasons = map[string]int{}
			}
			b.Reasons[rule] += n
		}
	}
	return nil
}
