package services_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	collpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// otlpReceiver is an in-process OTLP/HTTP receiver: it decodes the
// services' protobuf exports and keeps span names and services by trace.
type otlpReceiver struct {
	mu    sync.Mutex
	names map[string]map[string]int  // trace ID → span name → count
	svcs  map[string]map[string]bool // trace ID → service.name
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var ex collpb.ExportTraceServiceRequest
	if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &ex) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range ex.ResourceSpans {
		svc := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				svc = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				id := trace.TraceID(s.TraceId).String()
				if r.names[id] == nil {
					r.names[id], r.svcs[id] = map[string]int{}, map[string]bool{}
				}
				r.names[id][s.Name]++
				r.svcs[id][svc] = true
			}
		}
	}
	b, _ := proto.Marshal(&collpb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(b)
}

// TestOneTraceAcrossFourServices: with OTEL_EXPORTER_OTLP_ENDPOINT set, a
// batch through the four service processes on the emulators is one trace
// (carried in SQS message attributes) whose spans cover every chunk.
func TestOneTraceAcrossFourServices(t *testing.T) {
	rcv := &otlpReceiver{names: map[string]map[string]int{}, svcs: map[string]map[string]bool{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	orders, fin := testenv.SeedSample(t)
	s := newStack(t, 2000)
	loadReference(t, s, fin)
	s.startAll("OTEL_EXPORTER_OTLP_ENDPOINT=" + srv.URL)
	s.send("ingest", s.upload(orders, "traced.csv"))
	b := s.waitBatch("input/traced.csv", 2*time.Minute)
	s.stopAll() // each service flushes its spans on exit
	if b.TraceID == "" || b.TotalChunks < 2 {
		t.Fatalf("batch trace %q, %d chunks", b.TraceID, b.TotalChunks)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	got := rcv.names[b.TraceID]
	t.Logf("trace %s: %d chunks, spans %v", b.TraceID, b.TotalChunks, got)
	if got["split"] != 1 || got["process"] < b.TotalChunks || got["merge"] < 1 || got["notify"] < 1 || len(rcv.svcs[b.TraceID]) != 4 {
		t.Fatalf("trace %s: spans %v from services %v; want split, %d process, merge, notify from four services",
			b.TraceID, got, rcv.svcs[b.TraceID], b.TotalChunks)
	}
	if got["SQS.SendMessageBatch"]+got["SQS.SendMessage"] == 0 {
		t.Fatalf("trace %s has no otelaws spans: %v", b.TraceID, got)
	}
	checkLogTraces(t, s, b)
}

// checkLogTraces: every service's log line about the batch carries its
// trace_id and a span_id, and each of the four services wrote some.
func checkLogTraces(t *testing.T, s *stack, b sluice.Batch) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, p := range s.procs {
		n := 0
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil || rec["batch_id"] != b.ID {
				continue
			}
			n++
			if rec["trace_id"] != b.TraceID || rec["span_id"] == nil {
				t.Errorf("%s logged without the batch's trace %s: %s", name, b.TraceID, line)
			}
		}
		if n == 0 {
			t.Errorf("%s wrote no line about batch %s", name, b.ID)
		}
	}
}
