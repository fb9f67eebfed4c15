package dynamoledger_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/sluicehq/sluice/pkg/reference"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// TestCollectKeepsPinnedVersions: on DynamoDB too, collection deletes the
// rows of superseded versions nothing uses, and never those of a version an
// unfinished batch pins, however many loads came after.
func TestCollectKeepsPinnedVersions(t *testing.T) {
	db := newDB(t)
	c, l := db.Catalog(), db.Ledger()
	v1 := load(t, c, "20260101T000000.000001Z-p1", []string{"a", "1"})
	if _, _, err := l.CreateBatch(t.Context(), sluice.Batch{ID: "pinned", Key: "input/a.csv", RefVersion: v1.ID}); err != nil {
		t.Fatal(err)
	}
	v2 := load(t, c, "20260101T000000.000002Z-p2", []string{"a", "2"})
	v3 := load(t, c, "20260101T000000.000003Z-p3", []string{"a", "3"})
	gone, err := reference.Collect(t.Context(), c, l, 0, time.Now())
	if err != nil || len(gone) != 1 || gone[0] != v2.ID {
		t.Fatalf("Collect = %v, %v; want only %s (not the pinned %s nor the current %s)", gone, err, v2.ID, v1.ID, v3.ID)
	}
	ref, err := db.Catalog().Version(t.Context(), v1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if vals, err := ref.Lookup(t.Context(), []string{"a"}); err != nil || vals[0] == nil || vals[0][0] != "1" {
		t.Fatalf("the pinned version after collection = %v, %v", vals, err)
	}
	out, err := db.Client().Scan(t.Context(), &dynamodb.ScanInput{TableName: aws.String(db.Tables().Reference)})
	if err != nil || out.Count != 3 {
		t.Fatalf("reference table holds %d items, want the catalog item + v1's and v3's rows (%v)", out.Count, err)
	}
}
