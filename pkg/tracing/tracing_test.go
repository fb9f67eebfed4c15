package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	collpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/pkg/tracing"
)

// Receiver is an in-process OTLP/HTTP trace receiver: it decodes each
// export request's protobuf and keeps the span names by trace ID.
type receiver struct {
	mu    sync.Mutex
	spans map[string][]string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var ex collpb.ExportTraceServiceRequest
	if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &ex) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range ex.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				id := trace.TraceID(s.TraceId).String()
				r.spans[id] = append(r.spans[id], s.Name)
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&collpb.ExportTraceServiceResponse{})
	w.Write(b)
}

func TestSetupExportsOverOTLPWhenEndpointSet(t *testing.T) {
	rcv := &receiver{spans: map[string][]string{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	env := map[string]string{tracing.EnvEndpoint: srv.URL}
	shutdown, err := tracing.Setup(t.Context(), "test", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tracing.Start(t.Context(), "split")
	// The child continues the parent from a traceparent, as a consumer
	// does from a message.
	_, child := tracing.StartRemote(context.Background(), tracing.Inject(ctx), "process")
	tracing.End(child, nil)
	parent.End()
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	got := rcv.spans[tracing.TraceID(ctx)]
	if len(got) != 2 {
		t.Fatalf("receiver got %v for trace %s (all: %v)", got, tracing.TraceID(ctx), rcv.spans)
	}
}

func TestSetupOffInstallsNothing(t *testing.T) {
	before := otel.GetTracerProvider()
	shutdown, err := tracing.Setup(t.Context(), "test", func(string) string { return "" })
	if err != nil || shutdown(t.Context()) != nil {
		t.Fatal(err)
	}
	if otel.GetTracerProvider() != before {
		t.Fatal("Setup without the endpoint replaced the tracer provider")
	}
	ctx, span := tracing.StartRemote(t.Context(), "", "split")
	defer span.End()
	if tracing.Inject(ctx) != "" || tracing.TraceID(ctx) != "" {
		t.Fatal("a span with tracing off carries a context onto the queue")
	}
}

// BenchmarkStartOff is what the consumer pays per message with tracing
// off: it reports 0 allocs/op.
func BenchmarkStartOff(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, span := tracing.StartRemote(ctx, "", "process")
		if span.IsRecording() {
			span.SetAttributes(attribute.String("messaging.message.id", "42"))
		}
		_ = tracing.Inject(c)
		tracing.End(span, nil)
	}
}
