package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/provision"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/wire"
)

// awsFlags are the names of the AWS resources, defaulting to the same
// SLUICE_* variables the services read. Endpoints, region and credentials
// come from the SDK's own chain (AWS_ENDPOINT_URL_S3, AWS_PROFILE, ...).
type awsFlags struct {
	bucket, queuePrefix, tablePrefix *string
	pathStyle                        *bool
}

func addAWSFlags(fs *flag.FlagSet, e env) awsFlags {
	def := func(k, d string) string {
		if v := e.getenv(k); v != "" {
			return v
		}
		return d
	}
	return awsFlags{
		bucket:      fs.String("bucket", def("SLUICE_BUCKET", ""), "S3 `bucket`; env SLUICE_BUCKET"),
		queuePrefix: fs.String("queue-prefix", def("SLUICE_QUEUE_PREFIX", "sluice-"), "queue name prefix; env SLUICE_QUEUE_PREFIX"),
		tablePrefix: fs.String("table-prefix", def("SLUICE_TABLE_PREFIX", "sluice-"), "table name prefix; env SLUICE_TABLE_PREFIX"),
		pathStyle:   fs.Bool("path-style", def("SLUICE_S3_PATH_STYLE", "") == "true", "path-style S3 URLs (LocalStack, emulators); env SLUICE_S3_PATH_STYLE"),
	}
}

// options name the resources for wire.AWS; no queue is resolved unless
// the caller asks for it.
func (f awsFlags) options() wire.AWSOptions {
	return wire.AWSOptions{Bucket: *f.bucket, QueuePrefix: *f.queuePrefix, TablePrefix: *f.tablePrefix, PathStyle: *f.pathStyle}
}

// ports builds the AWS ports named by the flags.
func (f awsFlags) ports(ctx context.Context, o wire.AWSOptions) (*wire.Ports, error) {
	cfg, err := awsconfig.Load(ctx)
	if err != nil {
		return nil, err
	}
	return wire.AWS(ctx, cfg, o)
}

func (f awsFlags) need() error {
	if *f.bucket == "" {
		return usageErr("no bucket: pass --bucket or set SLUICE_BUCKET")
	}
	return nil
}

func cmdProvision(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "provision", "[flags]", "Creates, idempotently, the bucket (with its input/*.csv notification), the four queues\nwith their dead-letter queues, and the three tables on the endpoint the AWS SDK points at.")
	af := addAWSFlags(fs, e)
	maxReceive := fs.Int("max-receive", pipeline.MaxReceive, "receives before a message moves to its dead-letter queue")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := af.need(); err != nil {
		return err
	}
	cfg, err := awsconfig.Load(ctx)
	if err != nil {
		return err
	}
	steps, err := provision.Provision(ctx, cfg, provision.Options{Bucket: *af.bucket, QueuePrefix: *af.queuePrefix, TablePrefix: *af.tablePrefix, MaxReceive: *maxReceive, PathStyle: *af.pathStyle})
	for _, s := range steps {
		mark := "ok  "
		if s.Warning {
			mark = "warn"
		}
		fmt.Fprintf(e.stdout, "%s %s: %s\n", mark, s.What, s.Result)
	}
	return err
}

// runAWS uploads a file to the bucket's input/ and follows its batch in the
// batches table until it ends. The services do the work.
func runAWS(ctx context.Context, e env, af awsFlags, dir, input string, timeout time.Duration) (sluice.Batch, error) {
	if err := af.need(); err != nil {
		return sluice.Batch{}, err
	}
	ports, err := af.ports(ctx, af.options())
	if err != nil {
		return sluice.Batch{}, err
	}
	blobs, ledger := ports.Blobs, ports.Ledger
	f, err := os.Open(input)
	if err != nil {
		return sluice.Batch{}, err
	}
	defer f.Close()
	key := dir + filepath.Base(input) // dir: input/ and the feed's prefix
	sent := time.Now().Add(-time.Second)
	info, err := blobs.Put(ctx, key, f)
	if err != nil {
		return sluice.Batch{}, err
	}
	fmt.Fprintf(e.stderr, "uploaded s3://%s/%s (%d bytes); waiting for the services\n", *af.bucket, key, info.Size)
	return followAWS(ctx, ledger, key, info.ETag, sent, timeout)
}

func followAWS(ctx context.Context, l sluice.Ledger, key, etag string, since time.Time, timeout time.Duration) (sluice.Batch, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		bs, err := l.ListBatches(ctx, sluice.BatchFilter{Key: key, FieldsOnly: true})
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return sluice.Batch{}, err
		}
		for _, b := range bs {
			if b.ETag == etag && !b.CreatedAt.Before(since) && b.State.Terminal() && (b.EmailID != "" || b.State == sluice.StateFailed) && !b.DeliveriesPending() {
				return b, nil
			}
		}
		select {
		case <-ctx.Done():
			return sluice.Batch{}, fmt.Errorf("no finished batch for %s within %v: are the services running and the bucket notification set?", key, timeout)
		case <-t.C:
		}
	}
}
