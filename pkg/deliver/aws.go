package deliver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// WithRole returns cfg acting as roleARN (a partner's account), through
// STS AssumeRole with the SDK's cached, refreshing provider; an empty ARN
// leaves cfg as it is.
func WithRole(cfg aws.Config, roleARN string) aws.Config {
	if roleARN == "" {
		return cfg
	}
	cfg = cfg.Copy()
	cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), roleARN))
	return cfg
}

// S3Copy copies a batch's output (and, when asked, its error report) to
// another bucket and prefix by server-side copy: the bytes never pass
// through the worker. The copy's key is fixed by the batch, so a repeated
// delivery overwrites the same object with the same bytes.
type S3Copy struct {
	Name         string
	Client       *s3.Client
	SourceBucket string
	Bucket       string // the destination
	Prefix       string
	ErrorReport  bool
}

// Deliver copies outputKey (and errorsKey) under Prefix/batchID/.
func (c *S3Copy) Deliver(ctx context.Context, ev Event, outputKey, errorsKey string) error {
	keys := []string{outputKey}
	if c.ErrorReport && errorsKey != "" {
		keys = append(keys, errorsKey)
	}
	for _, k := range keys {
		dst := path.Join(c.Prefix, ev.BatchID, path.Base(k))
		_, err := c.Client.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket:     aws.String(c.Bucket),
			Key:        aws.String(dst),
			CopySource: aws.String(url.PathEscape(c.SourceBucket) + "/" + escapeKey(k)),
		})
		if err != nil {
			return fmt.Errorf("delivery to %s: copy %s to s3://%s/%s: %w", c.Name, k, c.Bucket, dst, err)
		}
	}
	return nil
}

// escapeKey escapes each segment of an object key for CopySource.
func escapeKey(k string) string {
	parts := strings.Split(k, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// SQSEvent puts the Event (schema: docs/delivery-event.md) on another
// team's queue, with the idempotency key as a message attribute and, on a
// FIFO queue, as the deduplication ID, so a repeat is dropped by SQS itself
// within its five-minute window and by the consumer after it.
type SQSEvent struct {
	Name     string
	Client   *sqs.Client
	QueueURL string
}

// Deliver sends ev.
func (q *SQSEvent) Deliver(ctx context.Context, ev Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	key := IdempotencyKey(ev.BatchID, q.Name)
	in := &sqs.SendMessageInput{
		QueueUrl:    aws.String(q.QueueURL),
		MessageBody: aws.String(string(body)),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"IdempotencyKey": {DataType: aws.String("String"), StringValue: aws.String(key)},
			"EventVersion":   {DataType: aws.String("Number"), StringValue: aws.String(fmt.Sprint(EventVersion))},
		},
	}
	if strings.HasSuffix(q.QueueURL, ".fifo") {
		in.MessageDeduplicationId, in.MessageGroupId = aws.String(key), aws.String(ev.BatchID)
	}
	if _, err := q.Client.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("delivery to %s: %w", q.Name, err)
	}
	return nil
}
