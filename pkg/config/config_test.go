package config_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
)

func TestMaxRejectRate(t *testing.T) {
	if config.Default().Limits.MaxRejectRate != nil {
		t.Fatal("the default sets a reject-rate limit; it must be opt-in")
	}
	p, err := config.Parse([]byte("limits:\n  maxRejectRate: 0.5\n"))
	if err != nil || p.Limits.MaxRejectRate == nil || *p.Limits.MaxRejectRate != 0.5 {
		t.Fatalf("maxRejectRate 0.5: %v %v", p, err)
	}
	if p.Limits.MaxLineBytes != config.Default().Limits.MaxLineBytes {
		t.Fatal("setting one limit dropped the others")
	}
	for _, bad := range []string{"1.5", "-0.1", "50%"} {
		_, err := config.Parse([]byte("limits:\n  maxRejectRate: " + bad + "\n"))
		if err == nil {
			t.Errorf("maxRejectRate %s accepted", bad)
		} else if bad != "50%" && !strings.Contains(err.Error(), "fraction") {
			t.Errorf("maxRejectRate %s: %v", bad, err)
		}
	}
}

func TestFormatKeys(t *testing.T) {
	for _, c := range []struct {
		yaml, err string
	}{
		{"output: {format: parquet}\nreference: {types: {unitsSold: integer, unitPrice: number}}", ""},
		{"output: {format: jsonl, compression: zstd}\ninput: {sheet: Orders, dateFormat: dd/mm/yyyy}", ""},
		{"output: {format: xml}", `output.format "xml"`},
		{"output: {compression: brotli}", `output.compression "brotli"`},
		{"output: {format: parquet, compression: gzip}", "Parquet compresses its own pages"},
		{"reference: {types: {nope: integer}}", `reference.types names "nope"`},
		{"reference: {types: {unitsSold: int}}", `reference.types.unitsSold "int"`},
	} {
		_, err := config.Parse([]byte(c.yaml))
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q: error %v, want %q", c.yaml, err, c.err)
		}
	}
	// A configuration that does not set them keeps its digest input: the
	// default marshals without input/output keys.
	js, _ := json.Marshal(config.Default())
	if strings.Contains(string(js), `"input":{`) || strings.Contains(string(js), `"output":{`) {
		t.Errorf("the default marshals input/output keys: %s", js)
	}
}

// TestScanSplit: unset, the scan split starts at 1 GiB and only off local
// files, and leaves the configuration's JSON (its digest) as it was; set,
// it applies everywhere; nonsense is refused.
func TestScanSplit(t *testing.T) {
	def := config.Default()
	if min, set := def.ScanSplit.Threshold(); min != config.DefaultScanSplitBytes || set || def.ScanSplit.Range() != config.DefaultScanRangeBytes {
		t.Fatalf("default: threshold %d set %v range %d", min, set, def.ScanSplit.Range())
	}
	if j, _ := json.Marshal(def); bytes.Contains(j, []byte("scanSplit")) {
		t.Fatalf("the default's JSON names scanSplit, which would change every config digest: %s", j)
	}
	p, err := config.Parse([]byte("scanSplit: {minBytes: 1000, rangeBytes: 1048576}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if min, set := p.ScanSplit.Threshold(); min != 1000 || !set || p.ScanSplit.Range() != 1<<20 {
		t.Fatalf("set: threshold %d set %v range %d", min, set, p.ScanSplit.Range())
	}
	for _, bad := range []string{"scanSplit: {minBytes: -1}", "scanSplit: {rangeBytes: 2147483648}", "scanSplit: {rangeByte: 1}",
		"scanSplit: {rangeBytes: 1}", "scanSplit: {rangeBytes: 65535}"} {
		if _, err := config.Parse([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// The ranges a file of limits.maxFileBytes makes are bounded, at the top
// level and in each feed, and the error names both keys.
func TestScanSplitRangesBounded(t *testing.T) {
	// The default 10 GiB limit at 64 KiB ranges: 163,840 ranges.
	_, err := config.Parse([]byte("scanSplit: {rangeBytes: 65536}\n"))
	if err == nil || !strings.Contains(err.Error(), "limits.maxFileBytes") || !strings.Contains(err.Error(), "scanSplit.rangeBytes") {
		t.Fatalf("10 GiB in 64 KiB ranges: %v; want an error naming both keys", err)
	}
	if _, err := config.Parse([]byte("limits: {maxFileBytes: 1073741824}\nscanSplit: {rangeBytes: 65536}\n")); err != nil {
		t.Fatalf("1 GiB in 64 KiB ranges (16,384): %v", err)
	}
	feed := "limits: {maxFileBytes: 1073741824}\nscanSplit: {rangeBytes: 65536}\nfeeds:\n  - {name: big, prefix: big/, limits: {maxFileBytes: 2147483648}}\n"
	if _, err := config.Parse([]byte(feed)); err == nil || !strings.Contains(err.Error(), "feeds.big") {
		t.Fatalf("a feed of 2 GiB in 64 KiB ranges: %v; want an error naming the feed", err)
	}
	if _, err := config.Parse([]byte("limits: {maxFileBytes: 1099511627776}\n")); err != nil {
		t.Fatalf("1 TiB at the default 64 MiB ranges (16,384): %v", err)
	}
}
