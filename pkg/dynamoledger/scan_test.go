package dynamoledger_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// rawBatch reads the batch item as stored, attribute by attribute.
func rawBatch(t *testing.T, db *dynamoledger.DB, id string) map[string]types.AttributeValue {
	t.Helper()
	out, err := db.Client().GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName: aws.String(db.Tables().Batches), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: id}},
	})
	if err != nil || out.Item == nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return out.Item
}

// The set of counted scan ranges goes once the stitch sets the total, so
// the chunks' reads of the batch item do not pay for it, and a late repeat
// of a range neither brings it back nor counts again.
func TestScanRangesRemovedAtTotal(t *testing.T) {
	db := newDB(t)
	l := db.Ledger()
	if _, _, err := l.CreateBatch(t.Context(), sluice.Batch{ID: "scan", Key: "input/s.csv"}); err != nil {
		t.Fatal(err)
	}
	const n = 400
	for r := range n {
		if _, err := l.ScanRangeDone(t.Context(), "scan", r, n); err != nil {
			t.Fatal(err)
		}
	}
	set, ok := rawBatch(t, db, "scan")["scanRanges"].(*types.AttributeValueMemberNS)
	if !ok || len(set.Value) != n {
		t.Fatalf("while splitting the item holds %v, want the %d ranges counted", set, n)
	}
	if _, err := l.SetTotal(t.Context(), "scan", 3, 30); err != nil {
		t.Fatal(err)
	}
	if v, ok := rawBatch(t, db, "scan")["scanRanges"]; ok {
		t.Fatalf("the total is set and the item still holds the ranges: %v", v)
	}
	c, err := l.ScanRangeDone(t.Context(), "scan", 7, n)
	if err != nil || c.Counted || !c.Complete || c.Completed || c.Done != n {
		t.Fatalf("late repeat = %+v, %v; want complete, not counted, not completed", c, err)
	}
	if v, ok := rawBatch(t, db, "scan")["scanRanges"]; ok {
		t.Fatalf("a late repeat added the set back: %v", v)
	}
	if b, err := l.GetBatch(t.Context(), "scan"); err != nil || b.TotalChunks != 3 {
		t.Fatalf("batch %+v, %v", b, err)
	}
}

// A range past the limit is a permanent error: no retry makes it fit.
func TestScanRangePastLimitPermanent(t *testing.T) {
	l := newDB(t).Ledger()
	if _, _, err := l.CreateBatch(t.Context(), sluice.Batch{ID: "big", Key: "input/b.csv"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]int{{sluice.MaxScanRanges, sluice.MaxScanRanges + 1}, {0, sluice.MaxScanRanges + 1}, {-1, 3}} {
		if _, err := l.ScanRangeDone(t.Context(), "big", c[0], c[1]); !sluice.IsPermanent(err) {
			t.Errorf("range %d of %d: %v; want a permanent error", c[0], c[1], err)
		}
	}
}
