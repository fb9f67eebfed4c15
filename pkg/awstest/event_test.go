package awstest_test

import (
	"testing"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/s3event"
)

// TestObjectCreatedParses: the splitter's own parser reads the event back,
// key encoding included.
func TestObjectCreatedParses(t *testing.T) {
	key := "input/orders 2026+ü.csv"
	evs, err := s3event.Parse(awstest.ObjectCreated("b", key, 42, "etag-1", "0A"))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	e := evs[0]
	if e.Bucket != "b" || e.Key != key || e.Size != 42 || e.ETag != "etag-1" || e.Sequence != "0A" {
		t.Errorf("parsed %+v", e)
	}
}
