package awsconfig_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/tracing"
)

// TestAWSCallsAreChildSpans: with tracing on, each AWS call (here S3 on
// the emulator) is an otelaws span inside the caller's trace; with it off
// the config carries no tracing middleware.
func TestAWSCallsAreChildSpans(t *testing.T) {
	env := awstest.Shared(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", env.Endpoint(awstest.S3))
	t.Setenv("AWS_REGION", awstest.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	off, err := awsconfig.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	shutdown := tracing.Install(sdktrace.NewSimpleSpanProcessor(exp), "test")
	defer shutdown(context.Background())
	cfg, err := awsconfig.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(off.APIOptions) != 0 || len(cfg.APIOptions) == 0 {
		t.Fatalf("API options %d with tracing on, %d off: want none off, otelaws on", len(cfg.APIOptions), len(off.APIOptions))
	}
	ctx, root := tracing.Start(t.Context(), "merge")
	s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).ListBuckets(ctx, &s3.ListBucketsInput{})
	root.End()
	var names []string
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() == root.SpanContext().TraceID() && s.Parent.SpanID() == root.SpanContext().SpanID() {
			names = append(names, s.Name)
		}
	}
	if len(names) != 1 || names[0] != "S3.ListBuckets" {
		t.Fatalf("child spans of the caller: %v, want [S3.ListBuckets]", names)
	}
}
