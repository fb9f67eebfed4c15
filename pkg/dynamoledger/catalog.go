package dynamoledger

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Catalog is a sluice.Catalog and sluice.CatalogLoader in the reference
// table.
//
// Every Load writes a new generation of items, keyed "<generation>#<key>",
// and only then points the item "current" at it. Readers therefore see the
// old reference or the new one, never a mix, without a transaction. The
// generation before the current one is kept until the next Load, so a
// process still reading it (it looks for a new generation every
// CatalogRefresh) finds it whole; older ones are deleted.
type Catalog struct {
	db *DB

	mu      sync.Mutex
	meta    *catalogMeta // nil: never loaded
	checked time.Time    // when meta was last read from the table
	cache   *lru
}

var (
	_ sluice.Catalog       = (*Catalog)(nil)
	_ sluice.CatalogLoader = (*Catalog)(nil)
)

type catalogMeta struct {
	gen     string
	columns []string
}

// metaKey is the key of the item that names the current generation. It
// has no '#', so no reference row can take it.
const metaKey = "current"

// maxBatchGet is how many keys one BatchGetItem may ask for.
const maxBatchGet = 100

// Catalog returns the catalog in db's reference table.
func (db *DB) Catalog() *Catalog {
	return &Catalog{db: db, cache: newLRU(db.opt.CacheSize)}
}

// errNoReference is what Columns says before any Load.
var errNoReference = fmt.Errorf("dynamodb: no reference data loaded (run `sluice reference load REF.csv`): %w", sluice.ErrNotFound)

func (c *Catalog) current(ctx context.Context) (*catalogMeta, error) {
	c.mu.Lock()
	if !c.checked.IsZero() && time.Since(c.checked) < c.db.opt.CatalogRefresh {
		m := c.meta
		c.mu.Unlock()
		return m, nil
	}
	c.mu.Unlock()
	out, err := c.db.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(c.db.tables.Reference),
		Key:            map[string]types.AttributeValue{"pk": avS(metaKey)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("dynamodb: reading the reference catalog: %w", err)
	}
	var m *catalogMeta
	if out.Item != nil {
		m = &catalogMeta{gen: getS(out.Item, "gen")}
		if err := json.Unmarshal([]byte(getS(out.Item, "columns")), &m.columns); err != nil {
			return nil, fmt.Errorf("dynamodb: reference catalog columns: %w", err)
		}
	}
	c.mu.Lock()
	c.meta, c.checked = m, time.Now()
	c.mu.Unlock()
	return m, nil
}

// Columns implements sluice.Catalog.
func (c *Catalog) Columns(ctx context.Context) ([]string, error) {
	m, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errNoReference
	}
	return slices.Clone(m.columns), nil
}

// Lookup implements sluice.Catalog: from the cache where it can, the rest
// with BatchGetItem calls of at most 100 keys, several at once. Unknown keys
// are cached too: a file full of one bad key should not cost a read per
// row.
func (c *Catalog) Lookup(ctx context.Context, keys []string) ([][]string, error) {
	out := make([][]string, len(keys))
	m, err := c.current(ctx)
	if err != nil || m == nil {
		return out, err
	}
	where := map[string][]int{}
	for i, k := range keys {
		if vals, ok := c.cache.get(m.gen + "#" + k); ok {
			out[i] = slices.Clone(vals)
			continue
		}
		where[k] = append(where[k], i)
	}
	if len(where) == 0 {
		return out, nil
	}
	misses := make([]string, 0, len(where))
	for k := range where {
		misses = append(misses, k)
	}
	slices.Sort(misses)

	var groups [][]string
	for len(misses) > 0 {
		n := min(len(misses), maxBatchGet)
		groups = append(groups, misses[:n])
		misses = misses[n:]
	}
	var mu sync.Mutex
	err = c.db.parallel(ctx, len(groups), func(ctx context.Context, g int) error {
		found, err := c.fetch(ctx, m.gen, groups[g])
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, k := range groups[g] {
			vals := found[k] // nil when unknown
			c.cache.put(m.gen+"#"+k, vals)
			for _, i := range where[k] {
				out[i] = slices.Clone(vals)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// fetch reads up to 100 keys of generation gen, asking again for the keys
// DynamoDB leaves unprocessed.
func (c *Catalog) fetch(ctx context.Context, gen string, keys []string) (map[string][]string, error) {
	table := c.db.tables.Reference
	ks := make([]map[string]types.AttributeValue, len(keys))
	for i, k := range keys {
		ks[i] = map[string]types.AttributeValue{"pk": avS(gen + "#" + k)}
	}
	req := map[string]types.KeysAndAttributes{table: {
		Keys: ks,
		// Consistent: an unknown key is cached, so a read that missed a
		// fresh write would be wrong for as long as the generation lives.
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String("pk, #v"),
		ExpressionAttributeNames: map[string]string{"#v": "v"},
	}}
	found := make(map[string][]string, len(keys))
	for attempt := 0; ; attempt++ {
		out, err := c.db.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return nil, fmt.Errorf("dynamodb: reference lookup: %w", err)
		}
		for _, item := range out.Responses[table] {
			_, key, _ := strings.Cut(getS(item, "pk"), "#")
			vals := []string{}
			if err := json.Unmarshal([]byte(getS(item, "v")), &vals); err != nil {
				return nil, fmt.Errorf("dynamodb: reference key %q: %w", key, err)
			}
			found[key] = vals
		}
		if len(out.UnprocessedKeys[table].Keys) == 0 {
			return found, nil
		}
		if attempt == maxBatchAttempts {
			return nil, fmt.Errorf("dynamodb: reference lookup: %d keys still unprocessed after %d attempts", len(out.UnprocessedKeys[table].Keys), attempt+1)
		}
		req = out.UnprocessedKeys
		if err := pause(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

// newGeneration names a Load's items. Fixed-width hex of the clock sorts
// generations by age; the random tail keeps two loads in one nanosecond
// apart.
func newGeneration() string {
	var r [2]byte
	rand.Read(r[:])
	return fmt.Sprintf("%016x%s", time.Now().UnixNano(), hex.EncodeToString(r[:]))
}

// rowHash tells two value rows of one key apart without keeping them.
func rowHash(vals []string) uint64 {
	h := fnv.New64a()
	var n [binary.MaxVarintLen64]byte
	for _, v := range vals {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(v)))])
		h.Write([]byte(v))
	}
	return h.Sum64()
}

// Load implements sluice.CatalogLoader. A key that appears twice with the
// same values is kept once; with different values the load fails, as in
// every catalog. Detecting that keeps a hash per key in memory (some tens
// of bytes a key). Loads must not run concurrently: each deletes the
// generations older than the one it replaces.
func (c *Catalog) Load(ctx context.Context, columns []string, next func() ([]string, error)) (int, error) {
	if len(columns) < 1 {
		return 0, errors.New("dynamodb: the reference has no columns")
	}
	prev, err := c.current(ctx)
	if err != nil {
		return 0, err
	}
	gen := newGeneration()
	n, err := c.write(ctx, gen, columns, next)
	if err != nil {
		c.deleteGenerations(gen, func(g string) bool { return g == gen })
		return 0, fmt.Errorf("dynamodb: reference load: %w", err)
	}
	cols, _ := json.Marshal(columns)
	_, err = c.db.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(c.db.tables.Reference),
		Item: map[string]types.AttributeValue{
			"pk": avS(metaKey), "gen": avS(gen), "columns": avS(string(cols)),
			"rows": avN(int64(n)), "loadedAt": avS(time.Now().UTC().Format(timeFormat)),
		},
	})
	if err != nil {
		c.deleteGenerations(gen, func(g string) bool { return g == gen })
		return 0, fmt.Errorf("dynamodb: reference load: switching to the new data: %w", err)
	}
	c.mu.Lock()
	c.meta, c.checked = &catalogMeta{gen: gen, columns: slices.Clone(columns)}, time.Now()
	c.mu.Unlock()
	if prev != nil {
		// Best effort: a failure leaves unused items, never wrong answers,
		// and the next Load tries again.
		c.deleteGenerations(gen, func(g string) bool { return g < prev.gen })
	}
	return n, nil
}

func (c *Catalog) write(ctx context.Context, gen string, columns []string, next func() ([]string, error)) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []types.WriteRequest)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range c.db.opt.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for reqs := range batches {
				if err := c.db.writeBatch(ctx, c.db.tables.Reference, reqs); err != nil {
					select {
					case errc <- err:
					default:
					}
					cancel()
				}
			}
		}()
	}
	n, err := c.produce(ctx, gen, columns, next, batches)
	close(batches)
	wg.Wait()
	select {
	case werr := <-errc:
		return 0, werr
	default:
	}
	return n, err
}

func (c *Catalog) produce(ctx context.Context, gen string, columns []string, next func() ([]string, error), batches chan<- []types.WriteRequest) (int, error) {
	seen := map[string]uint64{}
	var reqs []types.WriteRequest
	send := func() error {
		select {
		case batches <- reqs:
			reqs = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		row, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		if len(row) != len(columns) {
			return 0, fmt.Errorf("reference row %d has %d fields, the header has %d", len(seen)+1, len(row), len(columns))
		}
		h := rowHash(row[1:])
		if old, ok := seen[row[0]]; ok {
			if old != h {
				return 0, fmt.Errorf("reference key %q appears twice with different values", row[0])
			}
			continue
		}
		seen[row[0]] = h
		v, _ := json.Marshal(row[1:])
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			"pk": avS(gen + "#" + row[0]), "v": avS(string(v)),
		}}})
		if len(reqs) == 25 {
			if err := send(); err != nil {
				return 0, err
			}
		}
	}
	if len(reqs) > 0 {
		if err := send(); err != nil {
			return 0, err
		}
	}
	return len(seen), nil
}

// deleteGenerations deletes the items of the generations drop selects,
// other than keep's. It scans the whole table, which a Load has just
// written anyway, and runs on its own context so that the cleanup after a
// cancelled Load still happens.
func (c *Catalog) deleteGenerations(keep string, drop func(gen string) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	table := c.db.tables.Reference
	p := dynamodb.NewScanPaginator(c.db.client, &dynamodb.ScanInput{
		TableName: aws.String(table), ProjectionExpression: aws.String("pk"),
	})
	var reqs []types.WriteRequest
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, item := range page.Items {
			pk := getS(item, "pk")
			gen, _, ok := strings.Cut(pk, "#")
			if !ok || gen == keep || !drop(gen) {
				continue
			}
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: map[string]types.AttributeValue{"pk": avS(pk)}}})
			if len(reqs) == 25 {
				if err := c.db.writeBatch(ctx, table, reqs); err != nil {
					return err
				}
				reqs = nil
			}
		}
	}
	if len(reqs) > 0 {
		return c.db.writeBatch(ctx, table, reqs)
	}
	return nil
}

// parallel runs fn for 0..n-1 with at most Options.Concurrency at once and
// returns the first error, cancelling the rest.
func (db *DB) parallel(ctx context.Context, n int, fn func(context.Context, int) error) error {
	if n == 1 {
		return fn(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	sem := make(chan struct{}, db.opt.Concurrency)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

// lru is a bounded map from reference key to values that forgets the
// least recently used key first. A nil value records an unknown key.
type lru struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recent
	items map[string]*list.Element
}

type lruEntry struct {
	key  string
	vals []string
}

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (l *lru) get(key string) ([]string, bool) {
	if l.max <= 0 {
		return nil, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.items[key]
	if !ok {
		return nil, false
	}
	l.order.MoveToFront(e)
	return e.Value.(*lruEntry).vals, true
}

func (l *lru) put(key string, vals []string) {
	if l.max <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.items[key]; ok {
		e.Value.(*lruEntry).vals = vals
		l.order.MoveToFront(e)
		return
	}
	l.items[key] = l.order.PushFront(&lruEntry{key: key, vals: vals})
	for l.order.Len() > l.max {
		old := l.order.Back()
		l.order.Remove(old)
		delete(l.items, old.Value.(*lruEntry).key)
	}
}
