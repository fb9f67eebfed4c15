package dynamoledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Catalog is a sluice.Catalog in the reference table.
//
// Every Load writes a new version's rows as items keyed
// "<version>#<key>", and only then publishes the version: one item,
// "catalog", lists the versions and names the current one, and is
// replaced with a conditional put. A batch pins the version that was
// current when it was created and reads only that version's items, so a
// later load never changes what it sees; a version is deleted only by
// Delete, which pkg/reference calls for versions no unfinished batch uses.
type Catalog struct {
	db *DB
	// prefix keeps a named dataset's items apart from every other's in the
	// one table: "" for the default dataset (the keys it always had),
	// "<dataset>/" for the others. Names have no '#' or '/'.
	prefix string
	// cache maps "<version>#<key>" to the key's values (nil: unknown). The
	// version in the key keeps one version's rows from serving another.
	cache *lru.Cache[string, []string]

	mu   sync.Mutex
	seen map[string]sluice.RefVersion // versions described so far; immutable
}

var _ sluice.Catalog = (*Catalog)(nil)

// catalogKey is the key of the item that lists the versions. It has no
// '#', so no reference row can take it.
const catalogKey = "catalog"

// maxBatchGet is how many keys one BatchGetItem may ask for.
const maxBatchGet = 100

// Catalog returns the default dataset's catalog in db's reference table.
func (db *DB) Catalog() *Catalog { return db.Dataset("default") }

// Dataset returns the catalog of one named reference dataset. Its versions,
// current pointer and rows are items of their own, so a load of one
// dataset never changes what another's batches look up.
func (db *DB) Dataset(name string) *Catalog {
	c := &Catalog{db: db, seen: map[string]sluice.RefVersion{}}
	if name != "default" && name != "" {
		c.prefix = name + "/"
	}
	if db.opt.CacheSize > 0 {
		c.cache, _ = lru.New[string, []string](db.opt.CacheSize)
	}
	return c
}

// errNoReference is what Current says before any Load.
var errNoReference = fmt.Errorf("dynamodb: no reference data loaded (run `sluice reference load --aws REF.csv` or put a CSV under reference/ in the bucket): %w", sluice.ErrNotFound)

// catalogState is the "catalog" item: the versions, oldest first, the
// current one, and a revision that makes concurrent changes fail rather
// than overwrite each other.
type catalogState struct {
	Current  string              `json:"current"`
	Versions []sluice.RefVersion `json:"versions"`
	rev      int64
}

func (s catalogState) find(id string) (sluice.RefVersion, bool) {
	i := slices.IndexFunc(s.Versions, func(v sluice.RefVersion) bool { return v.ID == id })
	if i < 0 {
		return sluice.RefVersion{}, false
	}
	return s.Versions[i], true
}

func (c *Catalog) state(ctx context.Context) (catalogState, error) {
	out, err := c.db.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(c.db.tables.Reference),
		Key:            map[string]types.AttributeValue{"pk": avS(c.prefix + catalogKey)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return catalogState{}, fmt.Errorf("dynamodb: reading the reference catalog: %w", err)
	}
	var s catalogState
	if out.Item == nil {
		return s, nil
	}
	if err := json.Unmarshal([]byte(getS(out.Item, "state")), &s); err != nil {
		return s, fmt.Errorf("dynamodb: the reference catalog item: %w", err)
	}
	s.rev = getN(out.Item, "rev")
	return s, nil
}

var errCatalogChanged = errors.New("dynamodb: another reference load or collection changed the catalog at the same time; try again")

// putState replaces the catalog item if no one changed it since s was read.
func (c *Catalog) putState(ctx context.Context, s catalogState) error {
	b, _ := json.Marshal(s)
	in := &dynamodb.PutItemInput{
		TableName: aws.String(c.db.tables.Reference),
		Item: map[string]types.AttributeValue{
			"pk": avS(c.prefix + catalogKey), "state": avS(string(b)), "rev": avN(s.rev + 1),
		},
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR rev = :rev"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":rev": avN(s.rev)},
	}
	_, err := c.db.client.PutItem(ctx, in)
	if isConditionFailed(err) {
		return errCatalogChanged
	}
	return err
}

// Current implements sluice.Catalog. It always reads the table: a split
// calls it once per batch, and a stale answer would pin an old version.
func (c *Catalog) Current(ctx context.Context) (sluice.RefVersion, error) {
	s, err := c.state(ctx)
	if err != nil {
		return sluice.RefVersion{}, err
	}
	v, ok := s.find(s.Current)
	if !ok {
		return v, errNoReference
	}
	return v, nil
}

// Versions implements sluice.Catalog.
func (c *Catalog) Versions(ctx context.Context) ([]sluice.RefVersion, error) {
	s, err := c.state(ctx)
	return s.Versions, err
}

// Version implements sluice.Catalog. A version's description never
// changes, so it is read from the table once per process.
func (c *Catalog) Version(ctx context.Context, id string) (sluice.Reference, error) {
	c.mu.Lock()
	v, ok := c.seen[id]
	c.mu.Unlock()
	if !ok {
		s, err := c.state(ctx)
		if err != nil {
			return nil, err
		}
		if v, ok = s.find(id); !ok {
			return nil, fmt.Errorf("dynamodb: reference version %q does not exist (deleted?): %w", id, sluice.ErrNotFound)
		}
		c.mu.Lock()
		c.seen[id] = v
		c.mu.Unlock()
	}
	return &version{c: c, v: v}, nil
}

// Delete implements sluice.Catalog: the version is unlisted first, then
// its items are deleted.
func (c *Catalog) Delete(ctx context.Context, id string) error {
	s, err := c.state(ctx)
	if err != nil {
		return err
	}
	if id == s.Current {
		return fmt.Errorf("dynamodb: %s is the current reference version; it cannot be deleted", id)
	}
	s.Versions = slices.DeleteFunc(s.Versions, func(v sluice.RefVersion) bool { return v.ID == id })
	if err := c.putState(ctx, s); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.seen, id)
	c.mu.Unlock()
	return c.deleteItems(ctx, id)
}

// version is one version's rows; it implements sluice.Reference.
type version struct {
	c *Catalog
	v sluice.RefVersion
}

func (r *version) Columns(ctx context.Context) ([]string, error) {
	return slices.Clone(r.v.Columns), nil
}

// Lookup implements sluice.Reference: from the cache where it can, the
// rest with BatchGetItem calls of at most 100 keys, several at once.
// Unknown keys are cached too: a file full of one bad key should not cost
// a read per row.
func (r *version) Lookup(ctx context.Context, keys []string) ([][]string, error) {
	c, id := r.c, r.v.ID
	out := make([][]string, len(keys))
	where := map[string][]int{}
	for i, k := range keys {
		if c.cache != nil {
			if vals, ok := c.cache.Get(id + "#" + k); ok {
				out[i] = slices.Clone(vals)
				continue
			}
		}
		where[k] = append(where[k], i)
	}
	misses := make([]string, 0, len(where))
	for k := range where {
		misses = append(misses, k)
	}
	slices.Sort(misses)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.db.opt.Concurrency)
	for group := range slices.Chunk(misses, maxBatchGet) {
		g.Go(func() error {
			found, err := c.fetch(gctx, id, group)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, k := range group {
				vals := found[k] // nil when unknown
				if c.cache != nil {
					c.cache.Add(id+"#"+k, vals)
				}
				for _, i := range where[k] {
					out[i] = slices.Clone(vals)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// fetch reads up to 100 keys of version id, asking again for the keys
// DynamoDB leaves unprocessed.
func (c *Catalog) fetch(ctx context.Context, id string, keys []string) (map[string][]string, error) {
	table := c.db.tables.Reference
	ks := make([]map[string]types.AttributeValue, len(keys))
	for i, k := range keys {
		ks[i] = map[string]types.AttributeValue{"pk": avS(c.prefix + id + "#" + k)}
	}
	req := map[string]types.KeysAndAttributes{table: {
		Keys: ks,
		// Consistent: an unknown key is cached, so a read that missed a
		// fresh write would be wrong for as long as the version lives.
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
