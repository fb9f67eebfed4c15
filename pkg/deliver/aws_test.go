package deliver_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/deliver"
	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestMain(m *testing.M) { awstest.Main(m, awstest.S3, awstest.SQS) }

// TestS3CopyOnTheEmulator: the output and the error report land under the
// partner's bucket and prefix with the same bytes; a repeated delivery
// leaves the same two objects.
func TestS3CopyOnTheEmulator(t *testing.T) {
	env := awstest.Shared(t)
	client := s3.NewFromConfig(env.Config(awstest.S3), func(o *s3.Options) { o.UsePathStyle = true })
	for _, b := range []string{"ours", "partner"} {
		if _, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{"output/b1/orders out.csv": "a,b\n1,2\n", "errors/b1/orders_errors.csv": "line,column\n"}
	for k, v := range files {
		if _, err := client.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("ours"), Key: aws.String(k), Body: strings.NewReader(v)}); err != nil {
			t.Fatal(err)
		}
	}
	sink := &deliver.S3Copy{SinkName: "archive", Client: client, SourceBucket: "ours", Bucket: "partner", Prefix: "in/sluice", ErrorReport: true}
	for range 2 {
		ev := event("b1")
		ev.OutputKey, ev.ErrorsKey = "output/b1/orders out.csv", "errors/b1/orders_errors.csv"
		if err := sink.Deliver(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	list, err := client.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String("partner")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 2 {
		t.Fatalf("%d objects in the partner's bucket, want 2", len(list.Contents))
	}
	for src, dst := range map[string]string{"output/b1/orders out.csv": "in/sluice/b1/orders out.csv", "errors/b1/orders_errors.csv": "in/sluice/b1/orders_errors.csv"} {
		o, err := client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("partner"), Key: aws.String(dst)})
		if err != nil {
			t.Fatalf("%s: %v", dst, err)
		}
		b, _ := io.ReadAll(o.Body)
		o.Body.Close()
		if string(b) != files[src] {
			t.Fatalf("%s holds %q, want %q", dst, b, files[src])
		}
	}
}

// TestSQSEventConsumed: a test consumer reads the completion event, checks
// its version, and de-duplicates by the idempotency key attribute: a
// delivery repeated after a crash yields one event per batch.
func TestSQSEventConsumed(t *testing.T) {
	env := awstest.Shared(t)
	client := sqs.NewFromConfig(env.Config(awstest.SQS))
	q, err := client.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String("partner-events")})
	if err != nil {
		t.Fatal(err)
	}
	sink := &deliver.SQSEvent{SinkName: "events", Client: client, QueueURL: *q.QueueUrl}
	for _, id := range []string{"b1", "b2", "b1"} { // b1 again: the crash between delivering and recording
		if err := sink.Deliver(t.Context(), event(id)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]deliver.Event{}
	for received := 0; received < 3; {
		out, err := client.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10,
			WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			t.Fatalf("only %d of 3 messages arrived", received)
		}
		for _, m := range out.Messages {
			received++
			if err := deliver.ValidateEvent([]byte(*m.Body)); err != nil {
				t.Fatal(err)
			}
			var ev deliver.Event
			if err := json.Unmarshal([]byte(*m.Body), &ev); err != nil || ev.Version != deliver.EventVersion {
				t.Fatalf("event %s: version %d, %v", *m.Body, ev.Version, err)
			}
			key := *m.MessageAttributes["IdempotencyKey"].StringValue
			if key != deliver.IdempotencyKey(ev.BatchID, "events") {
				t.Fatalf("key %s for batch %s", key, ev.BatchID)
			}
			seen[key] = ev
			client.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle})
		}
	}
	if len(seen) != 2 {
		t.Fatalf("%d distinct events after de-duplication, want 2 (one per batch)", len(seen))
	}
}

// TestS3SinkUploadsTheLocalFile: on the local backend there is no bucket
// to copy from, so the s3 sink uploads the output's file to the
// emulator; a bucket that does not exist is a refusal (*Failed), not an
// error to retry.
func TestS3SinkUploadsTheLocalFile(t *testing.T) {
	env := awstest.Shared(t)
	client := s3.NewFromConfig(env.Config(awstest.S3), func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String("partner-local")}); err != nil {
		t.Fatal(err)
	}
	local, err := fsblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const out = "uuid,Country\n1,Chad\n"
	if _, err := local.Put(t.Context(), "b9/output/completed/output.csv", strings.NewReader(out)); err != nil {
		t.Fatal(err)
	}
	ev := event("b9")
	ev.OutputKey = "b9/output/completed/output.csv"
	sink := &deliver.S3Copy{SinkName: "drop", Client: client, Source: local, Bucket: "partner-local", Prefix: "sluice"}
	if err := sink.Deliver(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	o, err := client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("partner-local"), Key: aws.String("sluice/b9/output.csv")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(o.Body)
	o.Body.Close()
	if string(b) != out {
		t.Fatalf("uploaded %q, want %q", b, out)
	}
	gone := &deliver.S3Copy{SinkName: "drop", Client: client, Source: local, Bucket: "no-such-partner-bucket"}
	var f *deliver.Failed
	if err := gone.Deliver(t.Context(), ev); !errors.As(err, &f) || f.Sink != "drop" {
		t.Fatalf("a missing bucket: %v, want a *Failed", err)
	}
}

// TestS3AndSQSDeliveriesAreSpans: every sink type records a "deliver"
// span in the batch's trace, as the webhook does.
func TestS3AndSQSDeliveriesAreSpans(t *testing.T) {
	env := awstest.Shared(t)
	exp := tracetest.NewInMemoryExporter()
	shutdown := tracing.Install(sdktrace.NewSimpleSpanProcessor(exp), "test")
	defer shutdown(context.Background())
	s3c := s3.NewFromConfig(env.Config(awstest.S3), func(o *s3.Options) { o.UsePathStyle = true })
	for _, b := range []string{"span-src", "span-dst"} {
		if _, err := s3c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s3c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("span-src"), Key: aws.String("b/output.csv"), Body: strings.NewReader("a\n")}); err != nil {
		t.Fatal(err)
	}
	sqsc := sqs.NewFromConfig(env.Config(awstest.SQS))
	q, err := sqsc.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String("span-events")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, root := tracing.Start(t.Context(), "deliver-message")
	ev := event("b")
	ev.OutputKey = "b/output.csv"
	if err := (&deliver.S3Copy{SinkName: "copy", Client: s3c, SourceBucket: "span-src", Bucket: "span-dst"}).Deliver(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := (&deliver.SQSEvent{SinkName: "events", Client: sqsc, QueueURL: *q.QueueUrl}).Deliver(ctx, ev); err != nil {
		t.Fatal(err)
	}
	root.End()
	types := map[string]bool{}
	for _, sp := range exp.GetSpans() {
		if sp.Name != "deliver" || sp.Parent.SpanID() != root.SpanContext().SpanID() {
			continue
		}
		for _, a := range sp.Attributes {
			if a.Key == "sluice.sink.type" {
				types[a.Value.AsString()] = true
			}
		}
	}
	if !types["s3"] || !types["sqs"] {
		t.Fatalf("deliver spans by sink type: %v", types)
	}
}
