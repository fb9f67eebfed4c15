package service_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/provision"
	"github.com/sluicehq/sluice/pkg/s3blob"
	"github.com/sluicehq/sluice/pkg/service"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqsqueue"
)

func TestMain(m *testing.M) {
	awstest.Main(m, awstest.S3, awstest.SQS, awstest.DynamoDB, awstest.SES)
}

// TestDeadLetteredMessageFailsItsBatchOnAWS: in the services, over the
// emulators, a chunk message that can never succeed (no chunk, no pinned
// reference version) is
// dead-lettered, and its batch fails with the reason and a failure email
// sent through SES, instead of staying "processing" with a message in a DLQ.
func TestDeadLetteredMessageFailsItsBatchOnAWS(t *testing.T) {
	env := awstest.Shared(t)
	for k, v := range map[string]string{
		"AWS_REGION": awstest.Region, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_ENDPOINT_URL_S3": env.Endpoint(awstest.S3), "AWS_ENDPOINT_URL_SQS": env.Endpoint(awstest.SQS),
		"AWS_ENDPOINT_URL_DYNAMODB": env.Endpoint(awstest.DynamoDB), "AWS_ENDPOINT_URL_SESV2": env.Endpoint(awstest.SES),
		"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
	} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cfg, err := awsconfig.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("dl%d", time.Now().UnixNano()%1e9)
	prefix, bucket := id+"-", id+"-bucket"
	if _, err := provision.Provision(ctx, cfg, provision.Options{Bucket: bucket, QueuePrefix: prefix, TablePrefix: prefix, PathStyle: true}); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"SLUICE_BACKEND": "aws", "SLUICE_BUCKET": bucket, "SLUICE_QUEUE_PREFIX": prefix, "SLUICE_TABLE_PREFIX": prefix,
		"SLUICE_S3_PATH_STYLE": "true", "SLUICE_MAIL_FROM": "sluice@example.com", "SLUICE_MAIL_TO": "ops@example.com",
		"SLUICE_HTTP_ADDR": "127.0.0.1:0", "SLUICE_WAIT": "1s",
		"SLUICE_CONCURRENCY": "1", "SLUICE_LOG_LEVEL": "error",
	}
	getenv := func(k string) string { return vars[k] }
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 2)
	for _, stage := range []string{"worker", "notifier"} {
		go func() { done <- service.Run(runCtx, stage, getenv, io.Discard) }()
	}
	defer func() {
		stop()
		for range 2 {
			<-done
		}
	}()

	led := dynamoledger.New(cfg, dynamoledger.DefaultTables(prefix)).Ledger()
	b := sluice.Batch{ID: "b-" + id, Bucket: bucket, Key: "input/orders.csv", Name: "orders.csv", CreatedAt: time.Now().UTC()}
	if _, _, err := led.CreateBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	// A part already written: the notifier removes the intermediates of a
	// batch that ended (retention.intermediates: 0s), on S3 too.
	blobs := s3blob.New(cfg, bucket, s3blob.WithPathStyle())
	part := pipeline.OutputPartKey(b, 1)
	if _, err := blobs.Put(ctx, part, strings.NewReader("uuid\n1\n")); err != nil {
		t.Fatal(err)
	}
	u, err := sqs.NewFromConfig(cfg).GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: ptr(prefix + "chunks")})
	if err != nil {
		t.Fatal(err)
	}
	msg := sluice.ChunkReady{Version: sluice.MessageVersion, BatchID: b.ID, Chunk: 0, Key: pipeline.ChunkKey(b, 0), FirstLine: 2, Rows: 10}
	if err := sqsqueue.New(cfg, *u.QueueUrl).Send(ctx, sluice.Encode(msg)); err != nil {
		t.Fatal(err)
	}
	for {
		got, err := led.GetBatch(ctx, b.ID)
		if err == nil && got.State == sluice.StateCompleted || got.State == sluice.StateFailed && got.EmailID != "" {
			// The batch was made by hand: no reference version is pinned and
			// the chunk is missing; either way the message can never succeed.
			if got.State != sluice.StateFailed || !strings.Contains(got.Reason, "process message could never be handled") {
				t.Fatalf("batch %s: %q, want failed by its dead-lettered chunk message", got.State, got.Reason)
			}
			// The notifier removes them right after it records the email.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				_, err := blobs.Stat(ctx, part)
				if errors.Is(err, sluice.ErrNotFound) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("the ended batch's part is still in S3 (%v)", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the batch never failed: state %s, reason %q, email %q (%v)", got.State, got.Reason, got.EmailID, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func ptr(s string) *string { return &s }
