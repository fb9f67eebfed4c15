package services_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/deliver"
	"github.com/sluicehq/sluice/pkg/deliver/delivertest"
	"github.com/sluicehq/sluice/pkg/deploytest"
	"github.com/sluicehq/sluice/pkg/fault"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// TestCrashAtEveryDeliveryPointAWS stops the service that reaches each of
// pipeline.DeliveryPoints (the merger after sending the delivery
// messages, the deliverer before and after a sink's send) as kill -9
// would, restarts it, and expects: the batch completed with the embedded
// pipeline's output, every sink delivered (an s3 sink's server-side copy
// in the partner's bucket equal to the output), one record per batch at the
// signature-checking webhook receiver, and every event on the partner's
// queue for the batch carrying the one idempotency key of (batch, sink).
// Raw requests are counted too: a crash after the send repeats it (same
// key), which the receiver de-duplicates.
func TestCrashAtEveryDeliveryPointAWS(t *testing.T) {
	if testing.Short() {
		t.Skip("a batch per delivery fault point")
	}
	orders, fin := testenv.SeedSample(t)
	const chunkRows, secret = 4000, "whsec_crash"
	rc := delivertest.NewReceiver(t, secret, 0)
	s := newStack(t, chunkRows)
	cfg, err := awsconfig.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	client := sqs.NewFromConfig(cfg)
	q, err := client.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(s.prefix + "partner-events")})
	if err != nil {
		t.Fatal(err)
	}
	// The partner's bucket, for an s3 sink's server-side copy.
	drop := s.prefix + "partner-drop"
	pc := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := pc.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(drop)}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(s.cfgFile, []byte(fmt.Sprintf("chunkRows: 4000\ndeliver:\n"+
		"  - {name: partner, type: webhook, url: %q, secretEnv: SLUICE_TEST_PARTNER_SECRET, retries: 3, backoff: 10ms, timeout: 5s}\n"+
		"  - {name: events, type: sqs, queueUrl: %q}\n"+
		"  - {name: drop, type: s3, bucket: %q, prefix: in}\n", rc.URL, *q.QueueUrl, drop)), 0o644)
	s.env = append(s.env, "SLUICE_TEST_PARTNER_SECRET="+secret, "SLUICE_VISIBILITY=3s")
	loadReference(t, s, fin)
	s.startAll()
	wantOut, wantErrs, _ := embeddedOutput(t, chunkRows, orders, fin)
	for i, point := range pipeline.DeliveryPoints {
		stage := "deliverer"
		if strings.HasPrefix(point, "merge.") {
			stage = "merger"
		}
		name := fmt.Sprintf("deliver-crash-%02d.csv", i)
		before := rc.Accepted()
		s.stop(stage)
		p := s.start(stage, "SLUICE_CRASH_AT="+point)
		s.send("ingest", s.upload(orders, name))
		select {
		case <-p.done:
		case <-time.After(90 * time.Second):
			t.Fatalf("%s: %s never reached the point", point, stage)
		}
		if code := p.cmd.ProcessState.ExitCode(); code != fault.CrashExitCode {
			t.Fatalf("%s: %s exited with %d, want %d:\n%s", point, stage, code, fault.CrashExitCode, tail(p.stderr.String(), 2000))
		}
		checkLogs(t, stage, p)
		s.mu.Lock()
		delete(s.procs, stage)
		s.mu.Unlock()
		s.start(stage)
		b := s.waitBatch("input/"+name, 2*time.Minute)
		if b.State != sluice.StateCompleted {
			t.Fatalf("%s: batch %s %s (%s)", point, b.ID, b.State, b.Reason)
		}
		checkBatch(t, s, b, wantOut, wantErrs, 0)
		b = s.waitDeliveries(b.ID, time.Minute)
		for _, sink := range []string{"partner", "events", "drop"} {
			if d, ok := b.Delivery(sink); !ok || d.State != sluice.DeliveryDelivered {
				t.Fatalf("%s: sink %s %+v", point, sink, b.Deliveries)
			}
		}
		key := deliver.IdempotencyKey(b.ID, "partner")
		if ev, ok := rc.Records()[key]; !ok || ev.BatchID != b.ID || ev.RowsOut != 10000 || len(rc.Rejected()) != 0 {
			t.Fatalf("%s: webhook record %+v (found %v), rejected %v", point, ev, ok, rc.Rejected())
		}
		if n := len(rc.Records()); n != i+1 {
			t.Fatalf("%s: %d records at the receiver after %d batches", point, n, i+1)
		}
		raw := rc.Accepted() - before
		t.Logf("%s: %d signed webhook requests accepted for the batch (one record)", point, raw)
		// After the send a crash repeats it with the same key, but the
		// first delivery message reaching the point may be any sink's
		// (three are in flight at once), so a repeat is logged, not required.
		if raw < 1 {
			t.Fatalf("%s: %d requests accepted", point, raw)
		}
		copied, err := pc.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(drop), Key: aws.String(path.Join("in", b.ID, path.Base(b.OutputKey)))})
		if err != nil {
			t.Fatalf("%s: the s3 sink's copy: %v", point, err)
		}
		got, _ := io.ReadAll(copied.Body)
		copied.Body.Close()
		if !bytes.Equal(got, wantOut) {
			t.Fatalf("%s: the partner's copy differs from the output (%d bytes, want %d)", point, len(got), len(wantOut))
		}
		n := partnerEvents(t, client, *q.QueueUrl, b.ID, deliver.IdempotencyKey(b.ID, "events"))
		t.Logf("%s: %d sqs events for the batch, one idempotency key", point, n)
		if stage == "merger" {
			// The deliverer, not restarted, made every sink's calls.
			checkSinkCallsCounted(t, s)
		}
	}
	checkSinkCallsSeen(t, drop, *q.QueueUrl)
}

// checkSinkCallsCounted: the sinks' calls go through the deliverer's own
// SDK configuration, so sluice_aws_calls_total counts them.
func checkSinkCallsCounted(t *testing.T, s *stack) {
	t.Helper()
	s.mu.Lock()
	p := s.procs["deliverer"]
	s.mu.Unlock()
	m := metric(t, p.addr, "sluice_aws_calls_total")
	for _, op := range []string{`operation="CopyObject"`, `operation="SendMessage"`} {
		if !strings.Contains(m, op) {
			t.Errorf("the deliverer's sluice_aws_calls_total has no %s:\n%s", op, m)
		}
	}
}

// checkSinkCallsSeen: the least-privilege observer records the sinks'
// calls as a partner's resources (held against the delivery_* grants by
// services/privilege_test.go).
func checkSinkCallsSeen(t *testing.T, drop, queueURL string) {
	t.Helper()
	calls, err := deploytest.ReadCalls(observed)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"S3 CopyObject " + awsconfig.PartnerPrefix + drop:                  false,
		"SQS SendMessage " + awsconfig.PartnerPrefix + path.Base(queueURL): false,
	}
	for _, c := range calls {
		if c.Process != "deliverer" {
			continue
		}
		r := c.Resource
		if c.Service == "S3" {
			r, _, _ = strings.Cut(r, "/")
		}
		if _, ok := want[c.Service+" "+c.Operation+" "+r]; ok {
			want[c.Service+" "+c.Operation+" "+r] = true
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("the least-privilege observer did not record the deliverer's %s", k)
		}
	}
}

// partnerEvents drains the partner's queue as the other team's consumer
// would and checks every event of batch id is valid and carries key; it
// returns how many there were (at least one).
func partnerEvents(t *testing.T, client *sqs.Client, url, id, key string) int {
	t.Helper()
	n := 0
	for {
		out, err := client.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			if err := deliver.ValidateEvent([]byte(*m.Body)); err != nil {
				t.Fatal(err)
			}
			var ev deliver.Event
			json.Unmarshal([]byte(*m.Body), &ev)
			if ev.BatchID == id {
				if a, ok := m.MessageAttributes["IdempotencyKey"]; !ok || *a.StringValue != key {
					t.Fatalf("an event of %s without the key %s: %v", id, key, m.MessageAttributes)
				}
				n++
			}
			client.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
		}
	}
	if n == 0 {
		t.Fatalf("no event for batch %s on the partner's queue", id)
	}
	return n
}
