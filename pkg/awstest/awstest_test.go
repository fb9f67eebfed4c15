package awstest_test

import (
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sluicehq/sluice/pkg/awstest"
)

func TestStartsEveryServiceAndStops(t *testing.T) {
	all := []awstest.Service{awstest.S3, awstest.S3Copy, awstest.SQS, awstest.DynamoDB, awstest.SES}
	env := awstest.New(t, all...)
	for _, s := range all {
		ep := env.Endpoint(s)
		resp, err := http.Get(ep + "/")
		if err != nil {
			t.Fatalf("%s at %s: %v", s, ep, err)
		}
		resp.Body.Close()
		if cfg := env.Config(s); *cfg.BaseEndpoint != ep || cfg.Region == "" {
			t.Errorf("%s: config %+v", s, cfg)
		}
	}
	if env.External() {
		return
	}
	// Endpoints must be gone once the Env is closed, or every test binary
	// would leave node processes behind.
	eps := map[awstest.Service]string{}
	for _, s := range []awstest.Service{awstest.S3Copy, awstest.SQS, awstest.DynamoDB, awstest.SES} {
		eps[s] = env.Endpoint(s)
	}
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	for s, ep := range eps {
		if resp, err := http.Get(ep + "/"); err == nil {
			resp.Body.Close()
			t.Errorf("%s still answers at %s after Close", s, ep)
		}
	}
}

// The harness corrects local-aws-sqs's depths, so that code under test sees
// SQS's numbers: two sent, one received, is one visible and one in flight.
func TestSQSDepthsAreSQSs(t *testing.T) {
	env := awstest.New(t, awstest.SQS)
	client := sqs.NewFromConfig(env.Config(awstest.SQS))
	q, err := client.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String("depths")})
	if err != nil {
		t.Fatal(err)
	}
	depth := func() (visible, inFlight, delayed string) {
		t.Helper()
		out, err := client.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		}})
		if err != nil {
			t.Fatal(err)
		}
		a := out.Attributes
		return a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"], a["ApproximateNumberOfMessagesDelayed"]
	}
	for _, b := range []string{"a", "b"} {
		if _, err := client.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if v, f, d := depth(); v != "2" || f != "0" || d != "0" {
		t.Fatalf("after two sends: visible %s, in flight %s, delayed %s; want 2 0 0", v, f, d)
	}
	if out, err := client.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 1, VisibilityTimeout: 60}); err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive: %v", err)
	}
	if v, f, d := depth(); v != "1" || f != "1" || d != "0" {
		t.Fatalf("one received: visible %s, in flight %s, delayed %s; want 1 1 0", v, f, d)
	}
}
