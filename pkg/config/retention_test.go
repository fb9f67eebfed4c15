package config_test

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
)

// TestRetentionRecords: retention.records reads as a duration (the TTL of
// the DynamoDB ledger's items) and is off by default.
func TestRetentionRecords(t *testing.T) {
	if d := config.Default().Retention.Records.Duration; d != 0 {
		t.Fatalf("default retention.records %v, want 0 (kept)", d)
	}
	p, err := config.Parse([]byte("retention:\n  records: 2160h\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Retention.Records.Duration != 2160*time.Hour {
		t.Fatalf("retention.records %v, want 2160h", p.Retention.Records.Duration)
	}
}
