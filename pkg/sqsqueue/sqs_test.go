package sqsqueue_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sluice/sluicetest"
	"github.com/sluicehq/sluice/pkg/sqsqueue"
)

func TestMain(m *testing.M) { awstest.Main(m, awstest.SQS) }

var queues atomic.Int64

// newQueue makes a fresh queue and its dead-letter queue. maxReceive 0
// means no redrive, as in the conformance suite; SQS needs a number, so it
// gets one no test reaches.
func newQueue(t *testing.T, maxReceive int) (*sqsqueue.Queue, *sqsqueue.Queue) {
	t.Helper()
	env := awstest.Shared(t)
	cfg := env.Config(awstest.SQS)
	if maxReceive == 0 {
		maxReceive = 1000
	}
	name := fmt.Sprintf("sluice-test-%d-%d", time.Now().UnixNano()%1e9, queues.Add(1))
	qurl, dlqURL, err := sqsqueue.Ensure(t.Context(), cfg, name, sqsqueue.EnsureOptions{MaxReceive: maxReceive})
	if err != nil {
		t.Fatal(err)
	}
	q := sqsqueue.New(cfg, qurl, sqsqueue.WithDeadLetterURL(dlqURL))
	dlq := sqsqueue.New(cfg, dlqURL)
	t.Cleanup(func() {
		for _, u := range []string{qurl, dlqURL} {
			q.Client().DeleteQueue(t.Context(), &sqs.DeleteQueueInput{QueueUrl: aws.String(u)})
		}
	})
	return q, dlq
}

func TestQueueConformance(t *testing.T) {
	sluicetest.TestQueue(t, func(t *testing.T, maxReceive int) (sluice.Queue, sluice.Queue) {
		return newQueue(t, maxReceive)
	})
}

func TestReceiveReturnsAsSoonAsOneArrives(t *testing.T) {
	q, _ := newQueue(t, 0)
	go func() {
		time.Sleep(300 * time.Millisecond)
		q.Send(t.Context(), []byte("late"))
	}()
	start := time.Now()
	ms, err := q.Receive(t.Context(), 10, time.Minute, 10*time.Second)
	if err != nil || len(ms) != 1 {
		t.Fatalf("Receive = %d messages, %v", len(ms), err)
	}
	// local-aws-sqs alone would hold a poll for ten until the wait ends.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("one message took %v to arrive", d)
	}
	if ms[0].SentAt.IsZero() || time.Since(ms[0].SentAt) > time.Minute {
		t.Errorf("SentAt = %v", ms[0].SentAt)
	}
}

func TestReceiveCapsAtTen(t *testing.T) {
	q, _ := newQueue(t, 0)
	var bs [][]byte
	for i := range 15 {
		bs = append(bs, []byte(fmt.Sprint(i)))
	}
	if err := q.SendBatch(t.Context(), bs); err != nil {
		t.Fatal(err)
	}
	ms, err := q.Receive(t.Context(), 50, time.Minute, time.Second)
	if err != nil || len(ms) == 0 || len(ms) > 10 {
		t.Fatalf("Receive(50) = %d messages, %v", len(ms), err)
	}
}

func TestSendBatchSplitsBySize(t *testing.T) {
	q, _ := newQueue(t, 0)
	// Ten 100 KiB bodies cannot go in one 256 KiB batch.
	var bs [][]byte
	for i := range 10 {
		bs = append(bs, []byte(fmt.Sprintf("%d%s", i, strings.Repeat("x", 100<<10))))
	}
	if err := q.SendBatch(t.Context(), bs); err != nil {
		t.Fatal(err)
	}
	d, err := q.Depth(t.Context())
	if err != nil || d.Visible != 10 {
		t.Fatalf("Depth = %+v, %v", d, err)
	}
}

func TestDeadLetterCarriesTheReason(t *testing.T) {
	q, dlq := newQueue(t, 3)
	if err := q.Send(t.Context(), []byte(`{"v":99}`)); err != nil {
		t.Fatal(err)
	}
	ms, err := q.Receive(t.Context(), 1, time.Minute, time.Second)
	if err != nil || len(ms) != 1 {
		t.Fatalf("Receive: %d, %v", len(ms), err)
	}
	if err := q.DeadLetter(t.Context(), ms[0], "unknown message version 99"); err != nil {
		t.Fatal(err)
	}
	out, err := dlq.Client().ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(dlq.URL()), MessageAttributeNames: []string{"All"}, WaitTimeSeconds: 1,
	})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("dead-letter queue: %+v, %v", out, err)
	}
	attr := out.Messages[0].MessageAttributes[sqsqueue.ReasonAttribute]
	if aws.ToString(attr.StringValue) != "unknown message version 99" || aws.ToString(out.Messages[0].Body) != `{"v":99}` {
		t.Fatalf("dead letter: body %q attributes %+v", aws.ToString(out.Messages[0].Body), out.Messages[0].MessageAttributes)
	}
}

func TestEnsureIsIdempotentAndSetsRedrive(t *testing.T) {
	env := awstest.Shared(t)
	cfg := env.Config(awstest.SQS)
	name := fmt.Sprintf("sluice-ensure-%d", time.Now().UnixNano()%1e9)
	u1, d1, err := sqsqueue.Ensure(t.Context(), cfg, name, sqsqueue.EnsureOptions{MaxReceive: 3})
	if err != nil {
		t.Fatal(err)
	}
	u2, d2, err := sqsqueue.Ensure(t.Context(), cfg, name, sqsqueue.EnsureOptions{MaxReceive: 7})
	if err != nil || u1 != u2 || d1 != d2 {
		t.Fatalf("second Ensure = %s %s, %v; first %s %s", u2, d2, err, u1, d1)
	}
	q := sqsqueue.New(cfg, u1)
	out, err := q.Client().GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(u1), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := out.Attributes["RedrivePolicy"]; !strings.Contains(p, `"maxReceiveCount":7`) && !strings.Contains(p, `"maxReceiveCount":"7"`) {
		t.Fatalf("RedrivePolicy = %s", p)
	}
	if q.Name() != name {
		t.Errorf("Name = %q, want %q", q.Name(), name)
	}
}

// URLOf is what every caller that knows a queue by name uses (wire.AWS):
// it must find the queues Ensure made, and name a missing one clearly.
func TestURLOf(t *testing.T) {
	env := awstest.Shared(t)
	cfg := env.Config(awstest.SQS)
	name := fmt.Sprintf("sluice-urlof-%d", time.Now().UnixNano()%1e9)
	qurl, dlqURL, err := sqsqueue.Ensure(t.Context(), cfg, name, sqsqueue.EnsureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := sqsqueue.URLOf(t.Context(), cfg, name); err != nil || got != qurl {
		t.Fatalf("URLOf(%s) = %q, %v; want %q", name, got, err, qurl)
	}
	if got, err := sqsqueue.URLOf(t.Context(), cfg, name+"-dlq"); err != nil || got != dlqURL {
		t.Fatalf("URLOf(%s-dlq) = %q, %v; want %q", name, got, err, dlqURL)
	}
	if _, err := sqsqueue.URLOf(t.Context(), cfg, name+"-nosuch"); err == nil || !strings.Contains(err.Error(), name+"-nosuch") {
		t.Fatalf("URLOf of a missing queue: %v, want an error naming it", err)
	}
	// Without a dead-letter queue the operator's calls fail, not pretend.
	bare := sqsqueue.New(cfg, qurl)
	if _, err := bare.PeekDead(t.Context(), 1); err == nil {
		t.Error("PeekDead without a dead-letter queue succeeded")
	}
	if _, err := bare.Redrive(t.Context()); err == nil {
		t.Error("Redrive without a dead-letter queue succeeded")
	}
}
