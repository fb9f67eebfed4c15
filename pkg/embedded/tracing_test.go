package embedded_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
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

// TestLogLinesCarryTheTrace: with tracing on, every line the stage
// handlers and their consumers write about a batch (those with batch_id)
// carries the batch's trace_id and a span_id, so a log line leads to the
// trace.
func TestLogLinesCarryTheTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	shutdown := tracing.Install(sdktrace.NewSimpleSpanProcessor(exp), "sluice-test")
	t.Cleanup(func() { shutdown(context.Background()) })
	var logs syncBuffer
	cfg := config.Default()
	cfg.ChunkRows = 2
	eng, err := embedded.Open(t.TempDir(), cfg, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	got := runOn(t, eng, writeFile(t, "in.csv", faulty), writeFile(t, "ref.csv", faultyRef))
	b := got.batch
	if b.State != sluice.StateCompleted || b.TraceID == "" || b.TotalChunks < 3 {
		t.Fatalf("batch %s, trace %q, %d chunks", b.State, b.TraceID, b.TotalChunks)
	}
	lines, stages := 0, map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if rec["batch_id"] != b.ID {
			continue
		}
		lines++
		stages[fmt.Sprint(rec["msg"])] = true
		if rec["trace_id"] != b.TraceID || len(fmt.Sprint(rec["span_id"])) != 16 {
			t.Errorf("log line without the batch's trace %s: %s", b.TraceID, l)
		}
	}
	for _, msg := range []string{"batch created", "split done", "merged", "notified"} {
		if !stages[msg] {
			t.Errorf("no %q line for the batch among %d lines: %v", msg, lines, stages)
		}
	}
}

// syncBuffer is a bytes.Buffer the engine's goroutines may log to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
