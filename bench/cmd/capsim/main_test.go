package main

import (
	"math"
	"testing"
)

// With a counter item that never throttles, the file takes the chunk work
// spread over the slots; with DynamoDB's limit and the growing done-chunk
// set it takes the counter's time, which the model names.
func TestSimulateNamesTheBottleneck(t *testing.T) {
	m := defaults()
	m.ItemWCUPerSec = math.Inf(1)
	r := simulate(m)
	want := math.Ceil(float64(r.Chunks)/float64(m.Workers*m.PerTask)) * m.ChunkSec
	if math.Abs(r.Seconds-want) > 1e-6 || r.FirstSaturated != "the worker pool (chunk work)" {
		t.Fatalf("unlimited counter: %.3f s, %s; want %.3f s, the worker pool", r.Seconds, r.FirstSaturated, want)
	}
	r = simulate(defaults())
	if r.FirstSaturated != "the batch counter item's write rate" || r.Seconds < 3*r.WorkSeconds {
		t.Fatalf("defaults: %.0f s (work %.0f s), %s", r.Seconds, r.WorkSeconds, r.FirstSaturated)
	}
	m = defaults()
	m.ChunkRows = 500
	if r := simulate(m); !r.ItemLimitHit {
		t.Fatalf("200,000 chunks: final item %.0f bytes, limit not hit", r.FinalItemBytes)
	}
}
