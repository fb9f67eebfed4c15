package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/tracing"
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
// another bucket and prefix. On AWS (SourceBucket set) it is a server-side
// copy: the bytes never pass through the deliverer. Locally there is no
// bucket to copy from, so it uploads the local file (Source, a directory
// bucket). The copy's key is fixed by the batch, so a repeated delivery
// overwrites the same object with the same bytes.
type S3Copy struct {
	SinkName     string
	Client       *s3.Client
	SourceBucket string           // our bucket, for CopyObject
	Source       sluice.BlobStore // locally: the directory bucket whose files are uploaded
	Bucket       string           // the destination
	Prefix       string
	ErrorReport  bool
}

var _ sluice.Sink = (*S3Copy)(nil)

// Name implements sluice.Sink.
func (c *S3Copy) Name() string { return c.SinkName }

// Type implements sluice.Sink.
func (c *S3Copy) Type() string { return "s3" }

// Deliver copies ev.OutputKey (and ev.ErrorsKey) under Prefix/batchID/.
func (c *S3Copy) Deliver(ctx context.Context, ev Event) (err error) {
	ctx, span := tracing.StartDelivery(ctx, "s3", c.SinkName)
	defer func() { tracing.End(span, err) }()
	keys := []string{ev.OutputKey}
	if c.ErrorReport && ev.ErrorsKey != "" {
		keys = append(keys, ev.ErrorsKey)
	}
	for _, k := range keys {
		dst := path.Join(c.Prefix, ev.BatchID, path.Base(k))
		if c.SourceBucket != "" {
			_, err = c.Client.CopyObject(ctx, &s3.CopyObjectInput{
				Bucket:     aws.String(c.Bucket),
				Key:        aws.String(dst),
				CopySource: aws.String(url.PathEscape(c.SourceBucket) + "/" + escapeKey(k)),
			})
		} else {
			err = c.upload(ctx, k, dst)
		}
		if err != nil {
			return classify(c.SinkName, fmt.Errorf("copy %s to s3://%s/%s: %w", k, c.Bucket, dst, err))
		}
	}
	return nil
}

// upload puts the local file of key at dst: an *os.File, so the SDK can
// seek it to sign the payload and to retry.
func (c *S3Copy) upload(ctx context.Context, key, dst string) error {
	fs, ok := c.Source.(interface{ Path(string) (string, error) })
	if !ok {
		return errors.New("no local file to upload (set SourceBucket for a server-side copy)")
	}
	p, err := fs.Path(key)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = c.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.Bucket), Key: aws.String(dst), Body: f})
	return err
}

// escapeKey escapes each segment of an object key for CopySource.
func escapeKey(k string) string {
	parts := strings.Split(k, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// classify makes a refusal by the partner's side (access denied, no such
// bucket or queue: a 4xx other than throttling) a *Failed, which no retry
// now can fix; anything else stays an error the queue retries.
func classify(sink string, err error) error {
	var re interface{ HTTPStatusCode() int }
	var ae smithy.APIError
	if errors.As(err, &re) {
		code := re.HTTPStatusCode()
		throttled := code == 429 || (errors.As(err, &ae) && strings.Contains(ae.ErrorCode(), "Throttl"))
		if code >= 400 && code < 500 && !throttled {
			return &Failed{Sink: sink, Reason: err.Error()}
		}
	}
	return fmt.Errorf("delivery to %s: %w", sink, err)
}

// SQSEvent puts the Event (schema: docs/delivery-event.md) on another
// team's queue, with the idempotency key as a message attribute and, on a
// FIFO queue, as the deduplication ID, so a repeat is dropped by SQS itself
// within its five-minute window and by the consumer after it.
type SQSEvent struct {
	SinkName string
	Client   *sqs.Client
	QueueURL string
}

var _ sluice.Sink = (*SQSEvent)(nil)

// Name implements sluice.Sink.
func (q *SQSEvent) Name() string { return q.SinkName }

// Type implements sluice.Sink.
func (q *SQSEvent) Type() string { return "sqs" }

// Deliver sends ev.
func (q *SQSEvent) Deliver(ctx context.Context, ev Event) (err error) {
	ctx, span := tracing.StartDelivery(ctx, "sqs", q.SinkName)
	defer func() { tracing.End(span, err) }()
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	key := IdempotencyKey(ev.BatchID, q.SinkName)
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
		return classify(q.SinkName, err)
	}
	return nil
}
