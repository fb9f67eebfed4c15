package sqsqueue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/tracing"
)

// redrivePolicyReason stands for the reason of a message that SQS's own
// redrive policy moved: SQS records none.
const redrivePolicyReason = "moved by the queue's redrive policy (max receive count reached)"

// peekVisibility hides a message being peeked at while PeekDead pages
// through the dead-letter queue, so that it is not shown twice. PeekDead
// makes every message visible again before it returns; the timeout only
// matters if that release fails.
const peekVisibility = 30

func (q *Queue) deadLetterURL() (*string, error) {
	if q.opt.DeadLetterURL == "" {
		return nil, errors.New("no dead-letter queue configured")
	}
	return aws.String(q.opt.DeadLetterURL), nil
}

// PeekDead implements sluice.Queue. SQS has no read-only look: messages are
// received, kept invisible until the page is complete, then released at
// once with ChangeMessageVisibility 0, so that a Redrive right after a peek
// finds them all.
func (q *Queue) PeekDead(ctx context.Context, n int) ([]sluice.DeadMessage, error) {
	dlq, err := q.deadLetterURL()
	if err != nil {
		return nil, q.errorf("peek dead letters", err)
	}
	var out []sluice.DeadMessage
	var receipts []string
	seen := map[string]bool{} // a long peek can outlast peekVisibility
	defer func() { q.release(dlq, receipts) }()
	for len(out) < n {
		res, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: dlq, MaxNumberOfMessages: int32(min(10, n-len(out))), VisibilityTimeout: peekVisibility,
			MessageAttributeNames:       []string{ReasonAttribute},
			MessageSystemAttributeNames: systemAttrs,
			AttributeNames:              legacyAttrs, //nolint:staticcheck // see legacyAttrs
		})
		if err != nil {
			return out, q.errorf("peek dead letters", err)
		}
		if len(res.Messages) == 0 {
			return out, nil
		}
		fresh := 0
		for _, m := range res.Messages {
			receipts = append(receipts, aws.ToString(m.ReceiptHandle))
			if id := aws.ToString(m.MessageId); !seen[id] {
				seen[id] = true
				fresh++
				out = append(out, deadMessage(m))
			}
		}
		if fresh == 0 {
			return out, nil
		}
	}
	return out, nil
}

func deadMessage(m types.Message) sluice.DeadMessage {
	d := sluice.DeadMessage{ID: aws.ToString(m.MessageId), Body: []byte(aws.ToString(m.Body)), Reason: redrivePolicyReason}
	if a, ok := m.MessageAttributes[ReasonAttribute]; ok && aws.ToString(a.StringValue) != "" {
		d.Reason = aws.ToString(a.StringValue)
	}
	if ms, err := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64); err == nil {
		d.SentAt = time.UnixMilli(ms).UTC()
	}
	return d
}

// release makes peeked messages visible again. It runs on its own context,
// because the caller's may be what ended the peek.
func (q *Queue) release(dlq *string, receipts []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(receipts) > 0 {
		k := min(len(receipts), maxBatchEntries)
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, k)
		for i, r := range receipts[:k] {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r), VisibilityTimeout: 0}
		}
		// A failure leaves the messages hidden for peekVisibility: not worth
		// failing a peek that already has its answer.
		q.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: dlq, Entries: entries})
		receipts = receipts[k:]
	}
}

// Redrive implements sluice.Queue: receive ten, send them to this queue,
// delete them from the dead-letter queue, until it is empty. That order
// can duplicate a message on a crash but never lose one. (SQS's own
// StartMessageMoveTask runs asynchronously and the emulators lack it.)
//
// Only messages that were in the dead-letter queue when Redrive began are
// moved. A consumer still failing on them puts them back as new messages
// (sent after the start); those are held aside and shown again at the end,
// or the redrive of poison messages while the stage runs would never end.
func (q *Queue) Redrive(ctx context.Context) (int, error) {
	dlq, err := q.deadLetterURL()
	if err != nil {
		return 0, q.errorf("redrive", err)
	}
	start := time.Now().Truncate(time.Millisecond) // SentTimestamp is in ms
	var held []string
	defer func() { q.release(dlq, held) }()
	moved := 0
	for {
		res, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: dlq, MaxNumberOfMessages: maxBatchEntries, VisibilityTimeout: 60,
			MessageSystemAttributeNames: systemAttrs,
			AttributeNames:              legacyAttrs, //nolint:staticcheck // see legacyAttrs
			MessageAttributeNames:       traceAttrNames,
		})
		if err != nil {
			return moved, q.errorf("redrive", err)
		}
		if len(res.Messages) == 0 {
			return moved, nil
		}
		var old []types.Message
		for _, m := range res.Messages {
			if deadMessage(m).SentAt.Before(start) {
				old = append(old, m)
			} else {
				held = append(held, aws.ToString(m.ReceiptHandle))
			}
		}
		if err := q.moveBack(ctx, dlq, old); err != nil {
			return moved, err
		}
		moved += len(old)
	}
}

// moveBack sends ms to this queue, with their trace context, then deletes
// them from the dead-letter queue.
func (q *Queue) moveBack(ctx context.Context, dlq *string, ms []types.Message) error {
	if len(ms) == 0 {
		return nil
	}
	bodies := make([][]byte, len(ms))
	traces := make([]string, len(ms))
	entries := make([]types.DeleteMessageBatchRequestEntry, len(ms))
	for i, m := range ms {
		bodies[i] = []byte(aws.ToString(m.Body))
		if a, ok := m.MessageAttributes[tracing.Header]; ok {
			traces[i] = aws.ToString(a.StringValue)
		}
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
	}
	// Each message goes back with its own trace context (the batch's),
	// not the redriving operator's.
	if err := q.sendTraced(ctx, bodies, func(i int) string { return traces[i] }); err != nil {
		return err
	}
	out, err := q.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: dlq, Entries: entries})
	if err != nil {
		return q.errorf("redrive", err)
	}
	if len(out.Failed) > 0 {
		f := out.Failed[0]
		return q.errorf("redrive", fmt.Errorf("%d sent back but not deleted from the dead-letter queue: %s: %s", len(out.Failed), aws.ToString(f.Code), aws.ToString(f.Message)))
	}
	return nil
}

// URLOf resolves a queue's URL by name: the one helper for every caller that
// knows a queue by name (wire.AWS, and through it the services, the CLI and
// the chaos driver), so that a missing queue reads the same everywhere.
func URLOf(ctx context.Context, cfg aws.Config, name string) (string, error) {
	out, err := sqs.NewFromConfig(cfg).GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &name})
	if err != nil {
		return "", fmt.Errorf("sqs: queue %s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}
