package main

import (
	"context"
	"testing"
)

// TestMeasureSamplesRssAnon runs a real child that holds 64 MiB of
// anonymous memory (Python's bytearray) and checks the sampled RssAnon
// sees it, and stays below ru_maxrss.
func TestMeasureSamplesRssAnon(t *testing.T) {
	m, err := measure(context.Background(), nil, "python3", "-c", "import time; b = bytearray(64 << 20); time.sleep(0.3)")
	if err != nil {
		t.Skip("no python3:", err)
	}
	if m.MaxRssAnon < 64<<20 || m.MaxRssAnon > m.MaxRSS {
		t.Fatalf("RssAnon %d, ru_maxrss %d: want 64 MiB <= RssAnon <= RSS", m.MaxRssAnon, m.MaxRSS)
	}
}
