package embedded_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/tracing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TestOneTracePerBatch runs a 12-chunk batch through the embedded engine
// with the SDK's in-memory exporter: the context the submission starts
// travels through the SQLite queue to the split, each chunk, the merge and
// the notify, so all their spans land in the submission's trace.
func TestOneTracePerBatch(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	shutdown := tracing.Install(sdktrace.NewSimpleSpanProcessor(exp), "sluice-test")
	t.Cleanup(func() { shutdown(context.Background()) })
	dir := t.TempDir()
	orders, fin, _, err := gen.WriteFiles(dir, gen.Options{Rows: 30000, Seed: 42, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.ChunkRows = 2500
	eng, err := embedded.Open(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, _, err := eng.LoadReference(ctx, fin, nil); err != nil {
		t.Fatal(err)
	}
	ctx, root := tracing.Start(ctx, "test-submit")
	_, b, err := eng.Process(ctx, orders, nil, nil)
	root.End()
	if err != nil || b.State != sluice.StateCompleted {
		t.Fatalf("batch: %v (state %q)", err, b.State)
	}
	got := runOut{batch: b}

	tid := root.SpanContext().TraceID()
	if b.TraceID != tid.String() {
		t.Fatalf("batch records trace %q, want %s (the console and Grafana link to it)", b.TraceID, tid)
	}
	byName := map[string]int{}
	splitIDs := map[string]bool{}
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() != tid {
			continue
		}
		byName[s.Name]++
		if s.Name == "split" {
			splitIDs[s.SpanContext.SpanID().String()] = true
		}
	}
	if byName["split"] != 1 || byName["process"] < got.batch.TotalChunks || got.batch.TotalChunks != 12 ||
		byName["merge"] < 1 || byName["notify"] < 1 {
		t.Fatalf("spans in the batch's trace %s: %v, want split 1, process %d, merge and notify", tid, byName, got.batch.TotalChunks)
	}
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() == tid && s.Name == "process" && !splitIDs[s.Parent.SpanID().String()] {
			t.Fatalf("chunk span %s is not a child of the split span", s.SpanContext.SpanID())
		}
	}
}
