// Package provision creates, idempotently, the AWS resources the services
// need on whatever endpoint the SDK points at (AWS, LocalStack, emulators):
// the bucket with its object-created notification to the ingest queue, the
// four queues each with a dead-letter queue and a visibility timeout fitted
// to its stage, and the three tables. Terraform (deploy/terraform) makes the
// same resources for production; this is for development and tests.
package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sqsqueue"
)

// Options name the resources.
type Options struct {
	Bucket      string
	QueuePrefix string // default "sluice-"
	TablePrefix string // default "sluice-"
	MaxReceive  int    // default pipeline.MaxReceive
	PathStyle   bool
}

// Step is one thing Provision did or could not do.
type Step struct {
	What    string
	Result  string // "ok", or "skipped: why"
	Warning bool
}

// Provision creates what is missing and reports each step. A step the
// endpoint does not implement (emulators lack bucket notifications and
// encryption settings) is a warning, not an error.
func Provision(ctx context.Context, cfg aws.Config, o Options) ([]Step, error) {
	if o.Bucket == "" {
		return nil, errors.New("provision: no bucket name")
	}
	if o.QueuePrefix == "" {
		o.QueuePrefix = "sluice-"
	}
	if o.TablePrefix == "" {
		o.TablePrefix = "sluice-"
	}
	if o.MaxReceive == 0 {
		o.MaxReceive = pipeline.MaxReceive
	}
	var steps []Step
	add := func(what string, err error) error {
		switch {
		case err == nil:
			steps = append(steps, Step{What: what, Result: "ok"})
		case unsupported(err):
			steps = append(steps, Step{What: what, Result: "skipped: the endpoint does not implement it (" + errorCode(err) + ")", Warning: true})
		default:
			return fmt.Errorf("provision: %s: %w", what, err)
		}
		return nil
	}

	// Hardening steps never stop a provision: emulators answer them with
	// odd errors (gofakes3 takes them for a second CreateBucket). A real
	// refusal is shown as a warning; deploy/terraform sets both for
	// production.
	hardening := func(what string, err error) error {
		err = subresource(err)
		if err != nil && !unsupported(err) {
			steps = append(steps, Step{What: what, Result: "not applied: " + errorCode(err), Warning: true})
			return nil
		}
		return add(what, err)
	}
	s3c := s3.NewFromConfig(cfg, func(so *s3.Options) { so.UsePathStyle = o.PathStyle })
	if err := add("bucket "+o.Bucket, ensureBucket(ctx, s3c, o.Bucket)); err != nil {
		return steps, err
	}
	if err := harden(ctx, s3c, o.Bucket, hardening); err != nil {
		return steps, err
	}

	// Each stage's input queue, with the visibility its row in the
	// topology gives.
	var ingestURL string
	for _, st := range pipeline.Topology {
		q := st.Queue
		url, _, err := sqsqueue.Ensure(ctx, cfg, o.QueuePrefix+q, sqsqueue.EnsureOptions{MaxReceive: o.MaxReceive, Visibility: st.Visibility})
		if err := add("queue "+o.QueuePrefix+q+" (and "+pipeline.DLQSuffix+")", err); err != nil {
			return steps, err
		}
		if q == pipeline.QueueIngest {
			ingestURL = url
		}
	}

	db := dynamoledger.New(cfg, dynamoledger.DefaultTables(o.TablePrefix))
	if err := add("tables "+o.TablePrefix+"batches, rejects, reference", db.CreateTables(ctx)); err != nil {
		return steps, err
	}
	// Items expire by their expiresAt (retention.records); an endpoint
	// without TTL keeps them, and the step says it was skipped.
	for _, t := range db.TTLTables() {
		if err := add("TTL on "+t+" (expiresAt)", db.EnableTTL(ctx, t)); err != nil {
			return steps, err
		}
	}

	if err := connectIngest(ctx, cfg, s3c, o, ingestURL, add); err != nil {
		return steps, err
	}
	return steps, nil
}

// harden blocks public access and sets default encryption; step records
// each outcome (see Provision's hardening).
func harden(ctx context.Context, c *s3.Client, bucket string, hardening func(string, error) error) error {
	_, err := c.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: aws.String(bucket),
		PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{
			BlockPublicAcls: aws.Bool(true), BlockPublicPolicy: aws.Bool(true), IgnorePublicAcls: aws.Bool(true), RestrictPublicBuckets: aws.Bool(true)}})
	if err := hardening("bucket public access block", err); err != nil {
		return err
	}
	_, err = c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: aws.String(bucket),
		ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{Rules: []s3types.ServerSideEncryptionRule{{
			ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{SSEAlgorithm: s3types.ServerSideEncryptionAes256}}}}})
	return hardening("bucket default encryption", err)
}

// connectIngest lets S3 send to the ingest queue, for this bucket only,
// and asks the bucket to announce every input/*.csv there.
func connectIngest(ctx context.Context, cfg aws.Config, c *s3.Client, o Options, ingestURL string, add func(string, error) error) error {
	// S3 may send to the ingest queue only for this bucket.
	sqsc := sqs.NewFromConfig(cfg)
	attrs, err := sqsc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &ingestURL, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return fmt.Errorf("provision: ingest queue ARN: %w", err)
	}
	arn := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	policy, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{{
			"Sid": "S3Notifications", "Effect": "Allow", "Principal": map[string]string{"Service": "s3.amazonaws.com"},
			"Action": "sqs:SendMessage", "Resource": arn,
			"Condition": map[string]any{"ArnLike": map[string]string{"aws:SourceArn": "arn:aws:s3:::" + o.Bucket}},
		}},
	})
	_, err = sqsc.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &ingestURL, Attributes: map[string]string{"Policy": string(policy)}})
	if err := add("ingest queue policy for S3", err); err != nil {
		return err
	}
	// s3:ObjectCreated:* and not :Put: a multipart upload (any large file)
	// fires CompleteMultipartUpload, never Put.
	_, err = c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(o.Bucket),
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			Id: aws.String("sluice-ingest"), QueueArn: aws.String(arn), Events: []s3types.Event{"s3:ObjectCreated:*"},
			Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: []s3types.FilterRule{
				// No suffix: compressed CSVs and workbooks are inputs too, and
				// a file that is none of them fails its batch, visibly.
				{Name: s3types.FilterRuleNamePrefix, Value: aws.String("input/")},
			}}},
		}, {
			// A reference CSV becomes the new reference version.
			Id: aws.String("sluice-reference"), QueueArn: aws.String(arn), Events: []s3types.Event{"s3:ObjectCreated:*"},
			Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: []s3types.FilterRule{
				{Name: s3types.FilterRuleNamePrefix, Value: aws.String("reference/")},
				{Name: s3types.FilterRuleNameSuffix, Value: aws.String(".csv")},
			}}},
		}}},
	})
	if err := add("bucket notification input/*, reference/*.csv → "+o.QueuePrefix+pipeline.QueueIngest, subresource(err)); err != nil {
		return err
	}
	return nil
}

// ensureBucket looks the bucket up before creating it. S3-compatible
// stores (gofakes3, s3rver, several others) answer CreateBucket on a
// bucket the caller already owns with 409 BucketAlreadyExists, which
// AWS keeps for somebody else's bucket, so that answer cannot tell the
// two apart; HeadBucket can.
func ensureBucket(ctx context.Context, c *s3.Client, bucket string) error {
	_, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err == nil {
		return nil // ours, and there
	}
	var nf *s3types.NotFound
	var re interface{ HTTPStatusCode() int }
	missing := errors.As(err, &nf) || (errors.As(err, &re) && re.HTTPStatusCode() == 404)
	if !missing {
		if errors.As(err, &re) && re.HTTPStatusCode() == 403 {
			return fmt.Errorf("bucket %s exists but these credentials may not use it (another account's, or no s3:ListBucket): %w", bucket, err)
		}
		return err
	}
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *s3types.BucketAlreadyOwnedByYou
	if errors.As(err, &owned) || errorCode(err) == "BucketAlreadyOwnedByYou" {
		return nil // made meanwhile by another provision
	}
	return err
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// unsupported reports an error an emulator gives for an API it lacks.
func unsupported(err error) bool {
	switch errorCode(err) {
	case "NotImplemented", "NotImplementedException", "UnsupportedOperation", "MethodNotAllowed", "InvalidAction", "UnknownOperationException":
		return true
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && (re.HTTPStatusCode() == 501 || re.HTTPStatusCode() == 405) {
		return true
	}
	return false
}

// subresource reads an emulator's answer to a bucket sub-resource PUT
// (?notification, ?encryption, ?publicAccessBlock): gofakes3 takes every
// PUT on a bucket for CreateBucket and says BucketAlreadyExists, which from
// a bucket we just made or own means "not implemented".
func subresource(err error) error {
	if errorCode(err) == "BucketAlreadyExists" {
		return notImplemented{err}
	}
	return err
}

type notImplemented struct{ error }

func (notImplemented) ErrorCode() string { return "NotImplemented" }
func (notImplemented) ErrorMessage() string {
	return "the endpoint took a bucket sub-resource PUT for CreateBucket"
}
func (notImplemented) ErrorFault() smithy.ErrorFault { return smithy.FaultServer }
