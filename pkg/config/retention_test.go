package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
)

func TestRetentionDefaults(t *testing.T) {
	r := config.Default().Retention
	if r.Intermediates.Forever || r.Intermediates.D != 0 {
		t.Errorf("intermediates = %v, want 0s (removed when the batch ends)", r.Intermediates)
	}
	if !r.Outputs.Forever || !r.Archives.Forever {
		t.Errorf("outputs %v, archives %v: want both kept forever", r.Outputs, r.Archives)
	}
	if y := string(config.DefaultYAML()); !strings.Contains(y, "retention:") || !strings.Contains(y, "archives: forever") {
		t.Errorf("`sluice config default` does not show the retention keys")
	}
}

func TestRetentionParse(t *testing.T) {
	for _, c := range []struct {
		yaml    string
		outputs config.Period
		err     string
	}{
		{yaml: "retention: {outputs: 30d}", outputs: config.Period{D: 30 * 24 * time.Hour}},
		{yaml: "retention: {outputs: 36h}", outputs: config.Period{D: 36 * time.Hour}},
		{yaml: "retention: {outputs: forever}", outputs: config.Period{Forever: true}},
		{yaml: "retention: {outputs: soon}", err: `"soon" is not a period`},
		{yaml: "retention: {outputs: -1h}", err: "is not a period"},
		{yaml: "retention: {output: 1h}", err: "not found"},
	} {
		p, err := config.Parse([]byte(c.yaml))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.yaml, err, c.err)
			}
			continue
		}
		if err != nil || p.Retention.Outputs != c.outputs {
			t.Errorf("%s: %+v, %v", c.yaml, p.Retention.Outputs, err)
		}
		if !p.Retention.Archives.Forever {
			t.Errorf("%s: a key the file does not set lost its default", c.yaml)
		}
	}
}

func TestPeriodExpired(t *testing.T) {
	ended := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := config.Period{D: 24 * time.Hour}
	if day.Expired(ended, ended.Add(23*time.Hour)) || !day.Expired(ended, ended.Add(24*time.Hour)) {
		t.Error("a day's period expires after a day")
	}
	if (config.Period{Forever: true}).Expired(ended, ended.Add(1e6*time.Hour)) {
		t.Error("forever expired")
	}
	if !(config.Period{}).Expired(ended, ended) {
		t.Error("0s expires when the batch ends")
	}
	if day.Expired(time.Time{}, ended) {
		t.Error("a batch that has not ended expired")
	}
}

// TestRetentionRecords: retention.records reads as a duration (the TTL of
// the DynamoDB ledger's items) and is off by default.
func TestRetentionRecords(t *testing.T) {
	if d := config.Default().Retention.Records; !d.Forever {
		t.Fatalf("default retention.records %v, want forever", d)
	}
	p, err := config.Parse([]byte("retention:\n  records: 2160h\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Retention.Records.D != 2160*time.Hour {
		t.Fatalf("retention.records %v, want 2160h", p.Retention.Records)
	}
}
