// Package dynamodb holds the adapters on Amazon DynamoDB: the ledger
// (sluice.Ledger) in a batches table and a rejected-rows table, and the
// reference catalog (sluice.Catalog: immutable versions) in a reference
// table.
//
// Nothing here uses transactions (dynalite, the emulator the tests run on,
// has no TransactWriteItems, and none is needed): every invariant rests on
// one conditional UpdateItem or PutItem, whose returned image tells the
// caller what its own write did. Throttling is left to the SDK's retryer,
// given more attempts than its default, and to a backoff loop around the
// items that BatchWriteItem and BatchGetItem hand back unprocessed.
package dynamoledger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Tables names the three tables.
type Tables struct {
	Batches   string // one item per batch, keyed by "id"
	Rejects   string // one item per rejected row, keyed by "batchId" and "line"
	Reference string // the reference catalog, keyed by "pk"
}

// DefaultTables are the names `sluice provision` and the Terraform use,
// after prefix (such as "sluice-prod-").
func DefaultTables(prefix string) Tables {
	return Tables{Batches: prefix + "batches", Rejects: prefix + "rejects", Reference: prefix + "reference"}
}

// Options configure a DB.
type Options struct {
	// CacheSize bounds how many reference keys (known or unknown) each
	// Catalog keeps in memory. Default 100 000; negative turns the cache off.
	CacheSize int
	// Concurrency is how many batch requests a Load or a Lookup has in
	// flight at once. Default 4.
	Concurrency int
	// RecordTTL, when positive, gives batch and rejected-row items an
	// expiresAt attribute that long after they are written, which the
	// tables' TTL deletes (config retention.records). Default 0: kept.
	RecordTTL time.Duration
	// ShardWidth is how many chunks one shard item of the batch counter
	// counts (shards.go). Default DefaultShardWidth; tests make it small to
	// have many shards. Every process on a table must use the same width:
	// a batch records the width it was created with, and a ledger with
	// another refuses it with a permanent error.
	ShardWidth int
}

// Option changes Options.
type Option func(*Options)

// WithCacheSize sets Options.CacheSize.
func WithCacheSize(n int) Option { return func(o *Options) { o.CacheSize = n } }

// WithRecordTTL sets Options.RecordTTL.
func WithRecordTTL(d time.Duration) Option { return func(o *Options) { o.RecordTTL = d } }

// WithShardWidth sets Options.ShardWidth.
func WithShardWidth(n int) Option { return func(o *Options) { o.ShardWidth = n } }

// WithConcurrency sets Options.Concurrency.
func WithConcurrency(n int) Option { return func(o *Options) { o.Concurrency = n } }

// DB is a DynamoDB client and the tables it works on.
type DB struct {
	client *dynamodb.Client
	tables Tables
	opt    Options
}

// maxAttempts replaces the SDK's default of three attempts: a burst of
// chunk workers can be throttled for longer than three quick retries last.
const maxAttempts = 10

// New returns the tables in t. cfg comes from config.LoadDefaultConfig in
// the services, so AWS_ENDPOINT_URL_DYNAMODB, AWS_MAX_ATTEMPTS and the rest
// of the SDK's configuration chain apply.
func New(cfg aws.Config, t Tables, opts ...Option) *DB {
	o := Options{CacheSize: 100_000, Concurrency: 4}
	for _, f := range opts {
		f(&o)
	}
	o.Concurrency = max(o.Concurrency, 1)
	client := dynamodb.NewFromConfig(cfg, func(do *dynamodb.Options) {
		if cfg.RetryMaxAttempts == 0 {
			do.RetryMaxAttempts = maxAttempts
		}
	})
	return &DB{client: client, tables: t, opt: o}
}

// Client is the underlying DynamoDB client.
func (db *DB) Client() *dynamodb.Client { return db.client }

// Tables returns the table names.
func (db *DB) Tables() Tables { return db.tables }

// CreateTables makes the tables that do not exist yet, on-demand billed,
// and waits until all are active. Running it again changes nothing, so
// `sluice provision` can run it on every deploy.
func (db *DB) CreateTables(ctx context.Context) error {
	str, num := types.ScalarAttributeTypeS, types.ScalarAttributeTypeN
	// The sparse index of unfinished batches behind CountByState.
	unfinished := types.GlobalSecondaryIndex{
		IndexName:  aws.String(unfinishedIdx),
		KeySchema:  []types.KeySchemaElement{{AttributeName: aws.String(openStateAttr), KeyType: types.KeyTypeHash}},
		Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
	}
	specs := []struct {
		name      string
		hash      string
		hashType  types.ScalarAttributeType
		rangeKey  string
		rangeType types.ScalarAttributeType
	}{
		{db.tables.Batches, "id", str, "", ""},
		{db.tables.Rejects, "batchId", str, "line", num},
		{db.tables.Reference, "pk", str, "", ""},
	}
	for _, s := range specs {
		in := &dynamodb.CreateTableInput{
			TableName:            aws.String(s.name),
			BillingMode:          types.BillingModePayPerRequest,
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(s.hash), AttributeType: s.hashType}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(s.hash), KeyType: types.KeyTypeHash}},
		}
		if s.rangeKey != "" {
			in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(s.rangeKey), AttributeType: s.rangeType})
			in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: aws.String(s.rangeKey), KeyType: types.KeyTypeRange})
		}
		if s.name == db.tables.Batches {
			in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(openStateAttr), AttributeType: str})
			in.GlobalSecondaryIndexes = []types.GlobalSecondaryIndex{unfinished}
		}
		_, err := db.client.CreateTable(ctx, in)
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return fmt.Errorf("dynamodb: creating table %s: %w", s.name, err)
		}
	}
	w := dynamodb.NewTableExistsWaiter(db.client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 5*time.Second
	})
	for _, s := range specs {
		if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.name)}, 5*time.Minute); err != nil {
			return fmt.Errorf("dynamodb: waiting for table %s: %w", s.name, err)
		}
	}
	return db.addUnfinishedIndex(ctx, unfinished)
}

// addUnfinishedIndex adds the index to a batches table made before it
// existed. DynamoDB builds it in the background; until then CountByState
// fails, and the metrics sampler says so. Batches created before carry
// no openState, so they are counted again once they change state.
func (db *DB) addUnfinishedIndex(ctx context.Context, idx types.GlobalSecondaryIndex) error {
	out, err := db.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(db.tables.Batches)})
	if err != nil {
		return fmt.Errorf("dynamodb: describing table %s: %w", db.tables.Batches, err)
	}
	for _, g := range out.Table.GlobalSecondaryIndexes {
		if aws.ToString(g.IndexName) == unfinishedIdx {
			return nil
		}
	}
	_, err = db.client.UpdateTable(ctx, &dynamodb.UpdateTableInput{
		TableName:            aws.String(db.tables.Batches),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(openStateAttr), AttributeType: types.ScalarAttributeTypeS}},
		GlobalSecondaryIndexUpdates: []types.GlobalSecondaryIndexUpdate{{Create: &types.CreateGlobalSecondaryIndexAction{
			IndexName: idx.IndexName, KeySchema: idx.KeySchema, Projection: idx.Projection,
		}}},
	})
	if err != nil {
		return fmt.Errorf("dynamodb: adding index %s to %s: %w", unfinishedIdx, db.tables.Batches, err)
	}
	return nil
}

// TTLTables are the tables whose items carry expiresAt.
func (db *DB) TTLTables() []string { return []string{db.tables.Batches, db.tables.Rejects} }

// EnableTTL turns on expiry by expiresAt on table, unless it is on
// already (DynamoDB refuses to enable it twice).
func (db *DB) EnableTTL(ctx context.Context, table string) error {
	d, err := db.client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err == nil && d.TimeToLiveDescription != nil && aws.ToString(d.TimeToLiveDescription.AttributeName) == expiresAtAttr {
		switch d.TimeToLiveDescription.TimeToLiveStatus {
		case types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling:
			return nil
		}
	}
	_, err = db.client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(expiresAtAttr), Enabled: aws.Bool(true)},
	})
	return err
}

// pause waits before the attempt-th retry of unprocessed items: exponential
// with full jitter, as AWS advises for batch operations, capped at 5s.
func pause(ctx context.Context, attempt int) error {
	d := min(50*time.Millisecond<<min(attempt, 10), 5*time.Second)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(rand.N(d) + time.Millisecond):
		return nil
	}
}

// maxBatchAttempts bounds the retries of unprocessed items; the SDK has
// already retried each request on throttling before it gets here.
const maxBatchAttempts = 15

// writeBatch writes (or deletes) up to 25 items in one table, sending back
// what DynamoDB left unprocessed until nothing is left.
func (db *DB) writeBatch(ctx context.Context, table string, reqs []types.WriteRequest) error {
	pending := map[string][]types.WriteRequest{table: reqs}
	for attempt := 0; ; attempt++ {
		out, err := db.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
		if err != nil {
			return err
		}
		if len(out.UnprocessedItems[table]) == 0 {
			return nil
		}
		if attempt == maxBatchAttempts {
			return fmt.Errorf("%d items still unprocessed after %d attempts", len(out.UnprocessedItems[table]), attempt+1)
		}
		pending = out.UnprocessedItems
		if err := pause(ctx, attempt); err != nil {
			return err
		}
	}
}

// Attribute value helpers: the items are built and read by hand, since a
// batch item mixes fixed fields with counters, a set and one attribute per
// rejection rule.

func avS(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func avN(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func getS(item map[string]types.AttributeValue, k string) string {
	if v, ok := item[k].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(item map[string]types.AttributeValue, k string) int64 {
	if v, ok := item[k].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}
