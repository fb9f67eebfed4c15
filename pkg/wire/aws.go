package wire

import (
	"time"

	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/s3blob"
	"github.com/sluicehq/sluice/pkg/sesmail"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqsqueue"
)

// AWSOptions name the AWS resources and say which queues to resolve.
type AWSOptions struct {
	Bucket      string
	QueuePrefix string // default "sluice-"
	TablePrefix string // default "sluice-"
	PathStyle   bool   // path-style S3 URLs (LocalStack, emulators)
	// ReferenceCache is how many reference keys the catalog keeps in
	// memory: 0 takes dynamoledger's default, a negative number none.
	ReferenceCache int
	MailFrom       string
	// RecordTTL, when positive, makes batch and reject items expire that
	// long after they are written (config retention.records).
	RecordTTL time.Duration
	// Reads are queues resolved with their dead-letter queues; Sends are
	// resolved alone. Only these are looked up: a least-privilege role
	// may name no others, not even for GetQueueUrl.
	Reads, Sends []string
}

// StageOptions asks for the queues one stage touches.
func (o AWSOptions) Stage(s pipeline.Stage) AWSOptions {
	o.Reads, o.Sends = []string{s.Queue}, s.Sends
	return o
}

// AllQueues asks for every stage queue and its dead-letter queue.
func (o AWSOptions) AllQueues() AWSOptions {
	o.Reads, o.Sends = pipeline.Queues(), nil
	return o
}

// QueueName is a queue's full name.
func (o AWSOptions) QueueName(q string) string { return o.prefix() + q }

func (o AWSOptions) prefix() string {
	if o.QueuePrefix == "" {
		return "sluice-"
	}
	return o.QueuePrefix
}

// AWS builds the AWS adapters. Queues are resolved now, so a missing one
// is an error here rather than at the first message.
func AWS(ctx context.Context, cfg aws.Config, o AWSOptions) (*Ports, error) {
	p := &Ports{Queues: map[string]sluice.Queue{}, DLQs: map[string]sluice.Queue{}, pathStyle: o.PathStyle}
	resolve := func(name string) (string, error) {
		u, err := sqsqueue.URLOf(ctx, cfg, name)
		if err != nil {
			return "", fmt.Errorf("%w (run `sluice provision` first)", err)
		}
		return u, nil
	}
	for _, q := range o.Reads {
		url, err := resolve(o.QueueName(q))
		if err != nil {
			return nil, err
		}
		dlq, err := resolve(o.QueueName(q) + pipeline.DLQSuffix)
		if err != nil {
			return nil, err
		}
		p.Queues[q] = sqsqueue.New(cfg, url, sqsqueue.WithDeadLetterURL(dlq))
		p.DLQs[q] = sqsqueue.New(cfg, dlq)
	}
	for _, q := range o.Sends {
		if p.Queues[q] != nil {
			continue // read too (the splitter sends scan ranges to its own queue): keep its dead-letter queue
		}
		url, err := resolve(o.QueueName(q))
		if err != nil {
			return nil, err
		}
		p.Queues[q] = sqsqueue.New(cfg, url)
	}
	var s3opts []s3blob.Option
	if o.PathStyle {
		s3opts = append(s3opts, s3blob.WithPathStyle())
	}
	p.Blobs = s3blob.New(cfg, o.Bucket, s3opts...)
	tablePrefix := o.TablePrefix
	if tablePrefix == "" {
		tablePrefix = "sluice-"
	}
	var dbopts []dynamoledger.Option
	if o.ReferenceCache != 0 {
		dbopts = append(dbopts, dynamoledger.WithCacheSize(o.ReferenceCache))
	}
	if o.RecordTTL > 0 {
		dbopts = append(dbopts, dynamoledger.WithRecordTTL(o.RecordTTL))
	}
	db := dynamoledger.New(cfg, dynamoledger.DefaultTables(tablePrefix), dbopts...)
	p.Ledger, p.Catalog = db.Ledger(), db.Catalog()
	ds := &datasets{open: func(name string) (sluice.Catalog, error) { return db.Dataset(name), nil }}
	p.Dataset = ds.get
	p.Mailer = sesmail.New(cfg, sesmail.WithFrom(o.MailFrom))
	return p, nil
}
