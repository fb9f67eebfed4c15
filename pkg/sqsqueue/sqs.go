// Package sqsqueue is the sluice.Queue on an Amazon SQS standard queue.
//
// Redrive after too many receives is the queue's own RedrivePolicy, set when
// the queue is made (see Ensure); this package only moves a message to the
// dead-letter queue itself when a consumer gives up on it at once
// (DeadLetter), adding the reason as a message attribute, and when an
// operator sends the dead letters back (Redrive, in dlq.go).
package sqsqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sluicehq/sluice/pkg/tracing"
	"math"
	"net/url"
	"path"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// ReasonAttribute is the message attribute that carries why DeadLetter
// moved a message, for the operator reading the dead-letter queue.
const ReasonAttribute = "sluice-dead-letter-reason"

// SQS's limits.
const (
	maxBatchEntries = 10
	// maxBatchBytes keeps a SendMessageBatch under the 256 KiB that SQS
	// accepted for years; newer queues take 1 MiB, older setups and some
	// emulators do not.
	maxBatchBytes = 256 << 10
	maxWait       = 20 * time.Second
	maxVisibility = 12 * time.Hour
	maxReasonLen  = 4096
)

// Options configure a Queue.
type Options struct {
	// DeadLetterURL is where DeadLetter sends messages: the same queue the
	// RedrivePolicy names. Without it DeadLetter fails.
	DeadLetterURL string
}

// Option changes Options.
type Option func(*Options)

// WithDeadLetterURL sets Options.DeadLetterURL.
func WithDeadLetterURL(u string) Option { return func(o *Options) { o.DeadLetterURL = u } }

// Queue is one SQS queue.
type Queue struct {
	client *sqs.Client
	url    string
	name   string
	opt    Options
}

var _ sluice.Queue = (*Queue)(nil)

// New returns the queue at queueURL. cfg comes from config.LoadDefaultConfig
// in the services, so AWS_ENDPOINT_URL_SQS and the rest of the SDK's
// configuration chain apply.
func New(cfg aws.Config, queueURL string, opts ...Option) *Queue {
	var o Options
	for _, f := range opts {
		f(&o)
	}
	return &Queue{client: sqs.NewFromConfig(cfg), url: queueURL, name: nameOf(queueURL), opt: o}
}

func nameOf(queueURL string) string {
	if u, err := url.Parse(queueURL); err == nil && u.Path != "" {
		return path.Base(u.Path)
	}
	return queueURL
}

// Name implements sluice.Queue.
func (q *Queue) Name() string { return q.name }

// URL is the queue's URL.
func (q *Queue) URL() string { return q.url }

// Client is the underlying SQS client.
func (q *Queue) Client() *sqs.Client { return q.client }

func (q *Queue) errorf(op string, err error) error {
	return fmt.Errorf("sqs: %s %s: %w", op, q.name, err)
}

// seconds rounds d up to whole seconds, the unit of every SQS timeout, so
// that a wish for 500ms of waiting or invisibility is not rounded to none.
func seconds(d, limit time.Duration) int32 {
	d = min(max(d, 0), limit)
	return int32(math.Ceil(d.Seconds()))
}

// Send implements sluice.Queue.
func (q *Queue) Send(ctx context.Context, body []byte) error {
	_, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &q.url, MessageBody: aws.String(string(body)),
		MessageAttributes: traceAttrs(tracing.Inject(ctx))})
	if err != nil {
		return q.errorf("send", err)
	}
	return nil
}

// SendBatch implements sluice.Queue with SendMessageBatch calls of at most
// ten messages. Entries SQS failed on its side are sent again; an entry it
// refused as bad is an error.
func (q *Queue) SendBatch(ctx context.Context, bodies [][]byte) error {
	return q.sendTraced(ctx, bodies, func(int) string { return tracing.Inject(ctx) })
}

// sendTraced sends bodies in groups SQS accepts, body i with the trace
// context traceOf(i): the sender's for SendBatch, each message's own for
// Redrive.
func (q *Queue) sendTraced(ctx context.Context, bodies [][]byte, traceOf func(i int) string) error {
	// SQS counts attribute names, types and values in the size limit.
	extra := func(i int) int {
		if tp := traceOf(i); tp != "" {
			return len(tracing.Header) + len("String") + len(tp)
		}
		return 0
	}
	for off := 0; off < len(bodies); {
		n, size := 0, 0
		for off+n < len(bodies) && n < maxBatchEntries && (n == 0 || size+len(bodies[off+n])+extra(off+n) <= maxBatchBytes) {
			size += len(bodies[off+n]) + extra(off+n)
			n++
		}
		base := off
		if err := q.sendGroup(ctx, bodies[off:off+n], func(i int) map[string]types.MessageAttributeValue { return traceAttrs(traceOf(base + i)) }); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// traceAttrs carries a traceparent as a message attribute; nil when
// tracing is off, so a send is what it was before tracing.
func traceAttrs(tp string) map[string]types.MessageAttributeValue {
	if tp == "" {
		return nil
	}
	return map[string]types.MessageAttributeValue{tracing.Header: {DataType: aws.String("String"), StringValue: aws.String(tp)}}
}

func (q *Queue) sendGroup(ctx context.Context, bodies [][]byte, attrs func(i int) map[string]types.MessageAttributeValue) error {
	pending := make(map[string][]byte, len(bodies))
	for i, b := range bodies {
		pending[strconv.Itoa(i)] = b
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		entries := make([]types.SendMessageBatchRequestEntry, 0, len(pending))
		for id, b := range pending {
			i, _ := strconv.Atoi(id)
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: aws.String(string(b)), MessageAttributes: attrs(i)})
		}
		out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &q.url, Entries: entries})
		if err != nil {
			return q.errorf("send batch", err)
		}
		for _, ok := range out.Successful {
			delete(pending, aws.ToString(ok.Id))
		}
		if len(pending) == 0 {
			return nil
		}
		for _, f := range out.Failed {
			if f.SenderFault {
				return q.errorf("send batch", fmt.Errorf("entry refused: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message)))
			}
		}
		if attempt == 5 {
			return q.errorf("send batch", fmt.Errorf("%d entries still failing after %d attempts", len(pending), attempt))
		}
		select {
		case <-ctx.Done():
			return q.errorf("send batch", ctx.Err())
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// attributes asked of every received message. ApproximateReceiveCount goes
// in the older AttributeNames field as well as the newer one, because
// local-aws-sqs only reads the older.
var (
	systemAttrs = []types.MessageSystemAttributeName{
		types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp,
	}
	legacyAttrs    = []types.QueueAttributeName{"ApproximateReceiveCount", "SentTimestamp"}
	traceAttrNames = []string{tracing.Header}
)

func (q *Queue) receive(ctx context.Context, n int, visibility, wait int32) ([]sluice.Message, error) {
	out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    &q.url,
		MaxNumberOfMessages:         int32(n),
		VisibilityTimeout:           visibility,
		WaitTimeSeconds:             wait,
		MessageSystemAttributeNames: systemAttrs,
		AttributeNames:              legacyAttrs, //nolint:staticcheck // see legacyAttrs
		MessageAttributeNames:       traceAttrNames,
	})
	if err != nil {
		return nil, q.errorf("receive", err)
	}
	ms := make([]sluice.Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		msg := sluice.Message{ID: aws.ToString(m.MessageId), Body: []byte(aws.ToString(m.Body)), Receipt: aws.ToString(m.ReceiptHandle)}
		msg.ReceiveCount, _ = strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
		if a, ok := m.MessageAttributes[tracing.Header]; ok {
			msg.Trace = aws.ToString(a.StringValue)
		}
		if sent, err := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64); err == nil {
			msg.SentAt = time.UnixMilli(sent).UTC()
		}
		ms = append(ms, msg)
	}
	return ms, nil
}

// Receive implements sluice.Queue. It asks without waiting first and, only
// when nothing came, long-polls for a single message and then takes what
// else is there without waiting. SQS itself would answer a long poll for
// ten as soon as one arrives, but local-aws-sqs holds it until all ten are
// there or the wait ends; this order gives both the same latency, and costs
// SQS one extra request per idle poll.
func (q *Queue) Receive(ctx context.Context, n int, visibility, wait time.Duration) ([]sluice.Message, error) {
	n = min(max(n, 1), 10)
	vis := seconds(visibility, maxVisibility)
	ms, err := q.receive(ctx, n, vis, 0)
	if err != nil || len(ms) > 0 || wait <= 0 {
		return ms, err
	}
	ms, err = q.receive(ctx, 1, vis, seconds(wait, maxWait))
	if err != nil || len(ms) == 0 || n == 1 {
		return ms, err
	}
	// The first message is ours now; failing to get more must not lose it.
	more, err := q.receive(ctx, n-1, vis, 0)
	if err == nil {
		ms = append(ms, more...)
	}
	return ms, nil
}

// Extend implements sluice.Queue. On local-aws-sqs every visibility change
// also counts as a receive, so heartbeats there bring the redrive closer;
// SQS does not count them.
func (q *Queue) Extend(ctx context.Context, receipt string, d time.Duration) error {
	_, err := q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: &q.url, ReceiptHandle: &receipt, VisibilityTimeout: seconds(d, maxVisibility),
	})
	if err != nil {
		return q.errorf("extend", err)
	}
	return nil
}

// Delete implements sluice.Queue.
func (q *Queue) Delete(ctx context.Context, receipt string) error {
	if _, err := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &q.url, ReceiptHandle: &receipt}); err != nil {
		return q.errorf("delete", err)
	}
	return nil
}

// DeadLetter implements sluice.Queue: a copy goes to the dead-letter queue
// first, then the original is deleted, so a crash in between leaves a
// duplicate rather than losing the message.
func (q *Queue) DeadLetter(ctx context.Context, m sluice.Message, reason string) error {
	if q.opt.DeadLetterURL == "" {
		return q.errorf("dead-letter", errors.New("no dead-letter queue configured"))
	}
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	if reason == "" {
		reason = "unspecified" // SQS refuses empty attribute values
	}
	// The copy keeps the message's own trace context, as SQS's redrive
	// policy keeps its attributes, so a redrive continues the batch's trace.
	attrs := traceAttrs(m.Trace)
	if attrs == nil {
		attrs = map[string]types.MessageAttributeValue{}
	}
	attrs[ReasonAttribute] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(reason)}
	_, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:          aws.String(q.opt.DeadLetterURL),
		MessageBody:       aws.String(string(m.Body)),
		MessageAttributes: attrs,
	})
	if err != nil {
		return q.errorf("dead-letter", err)
	}
	return q.Delete(ctx, m.Receipt)
}

// Depth implements sluice.Queue. SQS's numbers are approximate.
func (q *Queue) Depth(ctx context.Context) (sluice.QueueDepth, error) {
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &q.url,
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return sluice.QueueDepth{}, q.errorf("depth", err)
	}
	n := func(a types.QueueAttributeName) int {
		v, _ := strconv.Atoi(out.Attributes[string(a)])
		return v
	}
	// local-aws-sqs counts differently; pkg/awstest corrects it in front
	// of the emulator, so this reads SQS's numbers as they are.
	return sluice.QueueDepth{
		Visible:  n(types.QueueAttributeNameApproximateNumberOfMessages),
		InFlight: n(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		Delayed:  n(types.QueueAttributeNameApproximateNumberOfMessagesDelayed),
	}, nil
}

// EnsureOptions shape the queues Ensure makes.
type EnsureOptions struct {
	// MaxReceive is how many receives a message gets before SQS moves it to
	// the dead-letter queue; 0 means 5.
	MaxReceive int
	// Visibility is the queue's default visibility timeout; 0 means 30s.
	Visibility time.Duration
	// DeadLetterName names the dead-letter queue; default: name + "-dlq".
	DeadLetterName string
}

// Ensure makes the queue name and its dead-letter queue, or brings an
// existing pair's redrive policy in line, and returns their URLs. It is
// what `sluice provision` and the tests use; the Terraform does the same.
func Ensure(ctx context.Context, cfg aws.Config, name string, o EnsureOptions) (queueURL, dlqURL string, err error) {
	if o.MaxReceive <= 0 {
		o.MaxReceive = 5
	}
	if o.Visibility <= 0 {
		o.Visibility = 30 * time.Second
	}
	if o.DeadLetterName == "" {
		o.DeadLetterName = name + "-dlq"
	}
	client := sqs.NewFromConfig(cfg)
	dlq, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  &o.DeadLetterName,
		Attributes: map[string]string{string(types.QueueAttributeNameMessageRetentionPeriod): "1209600"}, // 14 days to look
	})
	var exists *types.QueueNameExists
	if errors.As(err, &exists) {
		// Made elsewhere with other settings: use it as it is.
		var got *sqs.GetQueueUrlOutput
		if got, err = client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &o.DeadLetterName}); err == nil {
			dlq = &sqs.CreateQueueOutput{QueueUrl: got.QueueUrl}
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("sqs: creating %s: %w", o.DeadLetterName, err)
	}
	arn, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: dlq.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", "", fmt.Errorf("sqs: %s: %w", o.DeadLetterName, err)
	}
	policy, _ := json.Marshal(map[string]string{
		"maxReceiveCount":     strconv.Itoa(o.MaxReceive),
		"deadLetterTargetArn": arn.Attributes[string(types.QueueAttributeNameQueueArn)],
	})
	attrs := map[string]string{
		string(types.QueueAttributeNameRedrivePolicy):     string(policy),
		string(types.QueueAttributeNameVisibilityTimeout): strconv.Itoa(int(seconds(o.Visibility, maxVisibility))),
	}
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if errors.As(err, &exists) {
		// The queue is there with other attributes: set ours.
		got, gerr := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &name})
		if gerr != nil {
			return "", "", fmt.Errorf("sqs: %s: %w", name, gerr)
		}
		if _, err = client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: got.QueueUrl, Attributes: attrs}); err == nil {
			out = &sqs.CreateQueueOutput{QueueUrl: got.QueueUrl}
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("sqs: creating %s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), aws.ToString(dlq.QueueUrl), nil
}
