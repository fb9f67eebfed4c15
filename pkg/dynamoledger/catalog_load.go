package dynamoledger

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Load implements sluice.CatalogLoader: the rows first, under the new
// version's ID, then the catalog item that lists the version and makes it
// current. A load that fails deletes what it wrote; until the catalog item
// names the version, no reader can reach its items.
func (c *Catalog) Load(ctx context.Context, src sluice.RefSource) (sluice.RefVersion, error) {
	if len(src.Columns) < 1 {
		return sluice.RefVersion{}, errors.New("dynamodb: the reference has no columns")
	}
	n, err := c.write(ctx, src.ID, src.Columns, src.Next)
	if err == nil {
		var v sluice.RefVersion
		v, err = c.publish(ctx, src, n)
		if err == nil {
			return v, nil
		}
	}
	c.deleteItems(context.WithoutCancel(ctx), src.ID)
	return sluice.RefVersion{}, fmt.Errorf("dynamodb: reference load: %w", err)
}

// publish lists the version and makes it current. Two loads that finish
// at once both publish: the conditional put makes the loser read the
// catalog again and retry, so neither version is lost; the last to
// finish is current.
func (c *Catalog) publish(ctx context.Context, src sluice.RefSource, rows int) (sluice.RefVersion, error) {
	v := sluice.RefVersion{ID: src.ID, Hash: src.Hash, Source: src.Name, Columns: slices.Clone(src.Columns), Rows: rows, LoadedAt: time.Now().UTC()}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var s catalogState
		if s, err = c.state(ctx); err != nil {
			return v, err
		}
		s.Versions = append(s.Versions, v)
		slices.SortFunc(s.Versions, func(a, b sluice.RefVersion) int { return strings.Compare(a.ID, b.ID) })
		s.Current = v.ID
		if err = c.putState(ctx, s); !errors.Is(err, errCatalogChanged) {
			break
		}
	}
	if err != nil {
		return v, fmt.Errorf("publishing the new version: %w", err)
	}
	return v, nil
}

// write puts the rows with Options.Concurrency batch writes in flight.
func (c *Catalog) write(ctx context.Context, id string, columns []string, next func() ([]string, error)) (int, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.db.opt.Concurrency + 1) // the writers, and produce's loop
	n := 0
	g.Go(func() error {
		var err error
		n, err = produce(gctx, c.prefix+id, len(columns), next, func(reqs []types.WriteRequest) {
			g.Go(func() error { return c.db.writeBatch(gctx, c.db.tables.Reference, reqs) })
		})
		return err
	})
	return n, g.Wait()
}

// produce turns rows into batches of 25 puts and hands each to send. A key
// that appears twice with the same values is kept once; with different
// values the load fails. Detecting that keeps a hash per key in memory
// (some tens of bytes a key).
func produce(ctx context.Context, id string, ncols int, next func() ([]string, error), send func([]types.WriteRequest)) (int, error) {
	seen := map[string]uint64{}
	var reqs []types.WriteRequest
	for {
		row, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if len(row) != ncols {
			return 0, sluice.Permanentf("reference row %d has %d fields, the header has %d", len(seen)+1, len(row), ncols)
		}
		h := rowHash(row[1:])
		if old, ok := seen[row[0]]; ok {
			if old != h {
				return 0, sluice.Permanentf("reference key %q appears twice with different values", row[0])
			}
			continue
		}
		seen[row[0]] = h
		v, _ := json.Marshal(row[1:])
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			"pk": avS(id + "#" + row[0]), "v": avS(string(v)),
		}}})
		if len(reqs) == 25 {
			send(reqs)
			reqs = nil
		}
	}
	if len(reqs) > 0 {
		send(reqs)
	}
	return len(seen), nil
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

// deleteItems deletes the rows of version id. It scans the table (a
// version's rows share no partition) and is bounded in time of its own, so
// the cleanup after a cancelled Load still happens.
func (c *Catalog) deleteItems(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	table := c.db.tables.Reference
	p := dynamodb.NewScanPaginator(c.db.client, &dynamodb.ScanInput{
		TableName: aws.String(table), ProjectionExpression: aws.String("pk"),
		FilterExpression:          aws.String("begins_with(pk, :v)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": avS(c.prefix + id + "#")},
	})
	var reqs []types.WriteRequest
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, item := range page.Items {
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: map[string]types.AttributeValue{"pk": item["pk"]}}})
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
