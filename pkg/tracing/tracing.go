// Package tracing follows one batch across the stages with OpenTelemetry.
//
// Tracing is on only when OTEL_EXPORTER_OTLP_ENDPOINT is set: Setup then
// installs an SDK tracer provider exporting over OTLP/HTTP. Otherwise the
// global provider stays OpenTelemetry's no-op one, so a span costs a
// function call and no allocation (BenchmarkStartOff shows it).
//
// The trace context crosses a queue as a W3C traceparent string: queue
// adapters take it from the sender's context with Inject and hand it back
// in sluice.Message.Trace; the consumer continues it with Start.
package tracing

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// EnvEndpoint is the standard OpenTelemetry variable that turns tracing on.
const EnvEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"

// Header is the message attribute (SQS) that carries the context.
const Header = "traceparent"

const scope = "github.com/sluicehq/sluice"

var prop = propagation.TraceContext{}

// on is set once Install made a real provider: until then Start and
// StartRemote return at once, without building options (no allocation).
var on atomic.Bool

// Setup installs an OTLP/HTTP exporting tracer provider for service when
// getenv(OTEL_EXPORTER_OTLP_ENDPOINT) is set, and does nothing otherwise.
// The endpoint is a base URL, as the OpenTelemetry spec defines it; the
// exporter reads the other OTEL_EXPORTER_OTLP_* variables (headers,
// timeout) itself. The returned shutdown flushes pending spans.
func Setup(ctx context.Context, service string, getenv func(string) string) (shutdown func(context.Context) error, err error) {
	ep := getenv(EnvEndpoint)
	if ep == "" {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(strings.TrimRight(ep, "/")+"/v1/traces"))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	return Install(sdktrace.NewBatchSpanProcessor(exp), service), nil
}

// Install makes a tracer provider with sp the global one (tests pass an
// in-memory exporter's processor) and returns its shutdown, which flushes
// it and turns tracing off again.
func Install(sp sdktrace.SpanProcessor, service string) func(context.Context) error {
	res := sdkresource.NewSchemaless(semconv.ServiceName(service))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(prop)
	on.Store(true)
	return func(ctx context.Context) error {
		on.Store(false)
		otel.SetTracerProvider(noop.NewTracerProvider())
		return tp.Shutdown(ctx)
	}
}

// On says whether a tracer provider is installed (Setup found the
// endpoint): adapters add their tracing middleware only then.
func On() bool { return on.Load() }

// Start starts a span named name as a child of ctx's span.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !on.Load() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return otel.Tracer(scope).Start(ctx, name, trace.WithAttributes(attrs...))
}

// StartDelivery starts the span of one delivery of a batch to a sink
// (pkg/deliver): kind is the sink's type, sink its configured name.
func StartDelivery(ctx context.Context, kind, sink string) (context.Context, trace.Span) {
	return Start(ctx, "deliver", attribute.String("sluice.sink.type", kind), attribute.String("sluice.sink.name", sink))
}

// StartRemote starts a span continuing the traceparent a message carried
// (a new trace when it carried none, as a batch's first message does).
// It takes no attributes, so that with tracing off nothing escapes to the
// heap; set them when span.IsRecording().
func StartRemote(ctx context.Context, traceparent, name string) (context.Context, trace.Span) {
	if !on.Load() {
		return ctx, trace.SpanFromContext(ctx)
	}
	if traceparent != "" {
		ctx = prop.Extract(ctx, propagation.MapCarrier{Header: traceparent})
	}
	return otel.Tracer(scope).Start(ctx, name, trace.WithSpanKind(trace.SpanKindConsumer))
}

// End records err on span, if any, and ends it.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Inject returns the traceparent of ctx's span, or "" when there is none
// (tracing off): senders then store and send nothing extra.
func Inject(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	prop.Inject(ctx, c)
	return c[Header]
}

// TraceID is ctx's trace ID in hex, or "" when ctx has no span.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}
