package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/sluicehq/sluice/pkg/tracing"
)

// TestLogHandler: a line logged with a span's context carries its
// trace_id and span_id once, through With and a second wrap; a line
// without one is unchanged.
func TestLogHandler(t *testing.T) {
	shutdown := tracing.Install(sdktrace.NewSimpleSpanProcessor(tracetest.NewInMemoryExporter()), "test")
	t.Cleanup(func() { shutdown(context.Background()) })
	var buf bytes.Buffer
	log := tracing.Logger(tracing.Logger(slog.New(slog.NewJSONHandler(&buf, nil)))).With("batch_id", "b1")
	ctx, span := tracing.Start(t.Context(), "stage")
	defer span.End()
	log.InfoContext(ctx, "in a span")
	log.Info("no context")
	if first, _, _ := bytes.Cut(buf.Bytes(), []byte("\n")); bytes.Count(first, []byte(`"trace_id"`)) != 1 {
		t.Errorf("want trace_id once: %s", first)
	}
	dec := json.NewDecoder(&buf)
	var in, out map[string]any
	if err := dec.Decode(&in); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	if in["trace_id"] != sc.TraceID().String() || in["span_id"] != sc.SpanID().String() || in["batch_id"] != "b1" {
		t.Errorf("line in a span: %v", in)
	}
	if _, ok := out["trace_id"]; ok {
		t.Errorf("line without a span has a trace_id: %v", out)
	}
}
