package config_test

import (
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
