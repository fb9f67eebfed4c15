package wire

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/deliver"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// SinkOptions are what building the delivery sinks needs besides the
// configuration.
type SinkOptions struct {
	// Getenv reads the webhook secrets (secretEnv); nil: no variable is set.
	Getenv func(string) string
	// PathStyle addresses the s3 sinks' buckets path-style (emulators).
	PathStyle bool
	// AWS is the process's own SDK configuration (the services': call
	// counters, otelaws spans, the observed-calls recorder); nil: the
	// default chain is loaded when a sink needs it (the embedded engine).
	AWS *aws.Config
}

// UseSinks builds every feed's deliver: sinks, for either builder. A
// webhook whose secret variable is unset or empty refuses to start: an
// unsigned delivery would be rejected by the partner on every try. On AWS
// an s3 sink copies server-side from our bucket; locally (a directory
// bucket) it uploads the local file, with the SDK's default credentials.
// AWS configuration is loaded only when some sink needs it.
func (p *Ports) UseSinks(ctx context.Context, cfg *config.Pipeline, o SinkOptions) error {
	all := cfg.Sinks()
	if len(all) == 0 {
		return nil
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	p.sinks = map[string]map[string]sluice.Sink{}
	for feed, list := range all {
		p.sinks[feed] = map[string]sluice.Sink{}
		for _, s := range list {
			sink, err := p.buildSink(ctx, s, getenv, o)
			if err != nil {
				return fmt.Errorf("feed %s, sink %s: %w", feed, s.Name, err)
			}
			p.sinks[feed][s.Name] = sink
		}
	}
	return nil
}

func (p *Ports) buildSink(ctx context.Context, s config.Sink, getenv func(string) string, o SinkOptions) (sluice.Sink, error) {
	switch s.Type {
	case config.SinkWebhook:
		secret := getenv(s.SecretEnv)
		if strings.TrimSpace(secret) == "" {
			return nil, fmt.Errorf("the webhook secret variable %s is unset or empty", s.SecretEnv)
		}
		return &deliver.Webhook{SinkName: s.Name, URL: s.URL, Secret: []byte(secret), Retries: s.Retries,
			Backoff: s.Backoff.Duration, Timeout: s.Timeout.Duration, Client: sinkHTTPClient}, nil
	case config.SinkS3, config.SinkSQS:
		ac, err := p.awsConfig(ctx, o.AWS)
		if err != nil {
			return nil, fmt.Errorf("AWS configuration for the %s sink: %w", s.Type, err)
		}
		ac = deliver.WithRole(ac, s.RoleARN)
		if s.Type == config.SinkSQS {
			return &deliver.SQSEvent{SinkName: s.Name, Client: sqs.NewFromConfig(ac), QueueURL: s.QueueURL}, nil
		}
		c := &deliver.S3Copy{SinkName: s.Name, Bucket: s.Bucket, Prefix: s.Prefix, ErrorReport: s.ErrorReport,
			Client: s3.NewFromConfig(ac, func(so *s3.Options) { so.UsePathStyle = o.PathStyle || p.pathStyle })}
		if p.local {
			c.Source = p.Blobs
		} else {
			c.SourceBucket = p.Blobs.Bucket()
		}
		return c, nil
	}
	return nil, fmt.Errorf("unknown sink type %q", s.Type)
}

// sinkHTTPClient is the webhooks' client: no redirects to follow (the
// URL is configured, a redirect would send the signed body elsewhere).
var sinkHTTPClient = newSinkHTTPClient()

// awsConfig is the sinks' SDK configuration: the process's own (own),
// so their calls are in sluice_aws_calls_total, traced, and observed by
// the least-privilege test, or else the default chain, loaded once. It is
// marked awsconfig.Partner: the buckets and queues the sinks write are
// partners', granted by the delivery_* Terraform variables, and the
// observed calls say so (pkg/deploytest).
func (p *Ports) awsConfig(ctx context.Context, own *aws.Config) (aws.Config, error) {
	if p.sinkAWS != nil {
		return *p.sinkAWS, nil
	}
	var c aws.Config
	if own != nil {
		c = *own
	} else {
		var err error
		if c, err = awsconfig.Load(ctx); err != nil {
			return aws.Config{}, err
		}
	}
	c = awsconfig.Partner(c)
	p.sinkAWS = &c
	return c, nil
}

// Sink finds a feed's sink by name; an empty feed is the default feed.
func (p *Ports) Sink(feed, name string) (sluice.Sink, error) {
	if feed == "" {
		feed = config.DefaultFeed
	}
	s, ok := p.sinks[feed][name]
	if !ok {
		return nil, fmt.Errorf("feed %s has no sink %q in this process's configuration (removed since the batch was merged?)", feed, name)
	}
	return s, nil
}

func newSinkHTTPClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
