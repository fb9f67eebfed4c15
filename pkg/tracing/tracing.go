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

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// EnvEndpoint is the standard OpenTelemetry variable that turns tracing on.
const EnvEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"

// Header is the message attribute (SQS) that carries the context.
const Header = "traceparent"

const scope = "github.com/sluicehq/sluice"

var prop = propagation.TraceContext{}

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
// in-memory exporter's processor) and returns its shutdown.
func Install(sp sdktrace.SpanProcessor, service string) func(context.Context) error {
	res := sdkresource.NewSchemaless(semconv.ServiceName(service))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(prop)
	return tp.Shutdown
}

// Start starts a span named name as a child of ctx's span.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return otel.Tracer(scope).Start(ctx, name, trace.WithAttributes(attrs...))
}

// StartRemote starts a span continuing the traceparent a message carried
// (a new trace when it carried none, as a batch's first message does).
func StartRemote(ctx context.Context, traceparent, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if traceparent != "" {
		ctx = prop.Extract(ctx, propagation.MapCarrier{Header: traceparent})
	}
	return otel.Tracer(scope).Start(ctx, name, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
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
