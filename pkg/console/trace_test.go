package console_test

import (
	"context"
	"html"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/sluicehq/sluice/pkg/console"
	"github.com/sluicehq/sluice/pkg/tracing"
)

// TestTraceLink: with a trace UI URL configured, a traced batch's page
// links its trace ID there and the JSON API carries the ID and the link;
// without one, the page shows the ID alone and the API has no link.
func TestTraceLink(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	shutdown := tracing.Install(sdktrace.NewSimpleSpanProcessor(exp), "sluice-test")
	t.Cleanup(func() { shutdown(context.Background()) })
	const tmpl = "https://grafana.example/explore?left=%7B%22queries%22:%5B%7B%22query%22:%22{traceId}%22%7D%5D%7D&orgId=1"
	eng := newEngine(t, nil, true)
	linked := serve(t, eng, console.Options{TraceURL: tmpl})
	plain := serve(t, eng, console.Options{})
	up := upload(t, linked.url, "bad.csv", []byte("id,name\n1,x\n"))
	b := waitDone(t, linked.url, up.BatchID)
	if len(b.TraceID) != 32 {
		t.Fatalf("batch without a trace ID: %+v", b)
	}
	want := strings.ReplaceAll(tmpl, "{traceId}", b.TraceID)
	if b.Links.Trace != want {
		t.Fatalf("API trace link %q, want %q", b.Links.Trace, want)
	}
	page := string(get(t, linked.url+"/batches/"+b.ID).body)
	if !strings.Contains(page, `id="trace-link" href="`+html.EscapeString(want)+`"`) || !strings.Contains(page, b.TraceID) {
		t.Fatalf("batch page lacks the trace link %s:\n%s", want, page)
	}
	var v console.BatchView
	get(t, plain.url+"/api/batches/"+b.ID).json(t, &v)
	if v.TraceID != b.TraceID || v.Links.Trace != "" {
		t.Fatalf("without a trace URL: trace ID %q, link %q", v.TraceID, v.Links.Trace)
	}
	if page := string(get(t, plain.url+"/batches/"+b.ID).body); strings.Contains(page, "trace-link") || !strings.Contains(page, b.TraceID) {
		t.Fatal("without a trace URL the page must show the ID without a link")
	}
}

func TestCheckTraceURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"":                                    true,
		"https://grafana.example/t/{traceId}": true,
		"http://jaeger:16686/trace/{traceId}": true,
		"https://grafana.example/explore":     false, // no placeholder
		"javascript:alert(1)//{traceId}":      false,
		"/relative/{traceId}":                 false,
	} {
		if err := console.CheckTraceURL(u); (err == nil) != ok {
			t.Errorf("CheckTraceURL(%q) = %v", u, err)
		}
	}
}
