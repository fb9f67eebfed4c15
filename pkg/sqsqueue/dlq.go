package sqsqueue

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// DeadMessage is a message in a dead-letter queue, for an operator.
type DeadMessage struct {
	ID     string
	Body   []byte
	Reason string // the sluice-dead-letter-reason attribute; empty when SQS's redrive moved it
	SentAt time.Time
	// ReceiveCount is how often it was received in the dead-letter queue,
	// this look included.
	ReceiveCount int
}

// Peek shows up to limit messages of the dead-letter queue. SQS has no
// read-only look: each message is received with a short visibility timeout
// and left, so it is back within a few seconds.
func (q *Queue) Peek(ctx context.Context, limit int) ([]DeadMessage, error) {
	var out []DeadMessage
	seen := map[string]bool{}
	for len(out) < limit {
		res, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &q.url, MaxNumberOfMessages: int32(min(10, limit-len(out))), VisibilityTimeout: 5,
			MessageAttributeNames:       []string{ReasonAttribute},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameSentTimestamp, types.MessageSystemAttributeNameApproximateReceiveCount},
			AttributeNames:              []types.QueueAttributeName{"SentTimestamp", "ApproximateReceiveCount"}, //nolint:staticcheck // local-aws-sqs reads only this field
		})
		if err != nil {
			return out, q.errorf("peek", err)
		}
		if len(res.Messages) == 0 {
			break
		}
		fresh := 0
		for _, m := range res.Messages {
			id := aws.ToString(m.MessageId)
			if seen[id] {
				continue
			}
			seen[id] = true
			fresh++
			d := DeadMessage{ID: id, Body: []byte(aws.ToString(m.Body))}
			if a, ok := m.MessageAttributes[ReasonAttribute]; ok {
				d.Reason = aws.ToString(a.StringValue)
			}
			if ms, err := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64); err == nil {
				d.SentAt = time.UnixMilli(ms)
			}
			d.ReceiveCount, _ = strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
			out = append(out, d)
		}
		if fresh == 0 {
			break
		}
	}
	return out, nil
}

// MoveAll moves every message of this queue (a dead-letter queue) to dst,
// as fresh messages: receive, send, delete — the order that can duplicate
// a message on a crash but never lose one. It returns how many moved.
func (q *Queue) MoveAll(ctx context.Context, dst *Queue) (int, error) {
	moved := 0
	for {
		res, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &q.url, MaxNumberOfMessages: 10, VisibilityTimeout: 30})
		if err != nil {
			return moved, q.errorf("redrive", err)
		}
		if len(res.Messages) == 0 {
			return moved, nil
		}
		for _, m := range res.Messages {
			if err := dst.Send(ctx, []byte(aws.ToString(m.Body))); err != nil {
				return moved, err
			}
			if err := q.Delete(ctx, aws.ToString(m.ReceiptHandle)); err != nil {
				return moved, err
			}
			moved++
		}
	}
}

// URLOf resolves a queue's URL by name.
func URLOf(ctx context.Context, cfg aws.Config, name string) (string, error) {
	out, err := sqs.NewFromConfig(cfg).GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &name})
	if err != nil {
		return "", fmt.Errorf("sqs: queue %s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}
