package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/provision"
	"github.com/sluicehq/sluice/pkg/reference"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/wire"
)

// backend is where the services run: what they are told, how a file is
// submitted, and how the driver reads the results back.
type backend interface {
	env() []string
	submit(ctx context.Context, orders string) (batchID string, err error)
	batch(ctx context.Context, id string) (sluice.Batch, error)
	ledger() sluice.Ledger
	queues() map[string]sluice.Queue
	dlqs() map[string]sluice.Queue
	open(ctx context.Context, key string) (io.ReadCloser, error)
	emails(ctx context.Context, b sluice.Batch) (int, error)
	close() error
}

// local: the four services on one data directory.
type local struct {
	dir   string
	ports *wire.Ports
}

func newLocal(ctx context.Context, dir, fin string) (*local, error) {
	// The reference is loaded before the services start: each opens the
	// catalog once.
	eng, err := embedded.Open(dir, nil, nil)
	if err != nil {
		return nil, err
	}
	if _, _, err := eng.LoadReference(ctx, fin, nil); err != nil {
		eng.Close()
		return nil, err
	}
	if err := eng.Close(); err != nil {
		return nil, err
	}
	ports, err := wire.Local(dir)
	if err != nil {
		return nil, err
	}
	return &local{dir: dir, ports: ports}, nil
}

func (l *local) env() []string {
	return []string{"SLUICE_BACKEND=local", "SLUICE_DATA=" + l.dir}
}

// submit does what `sluice run` does: the engine puts the file under
// input/ and sends the event; it holds the directory only meanwhile.
func (l *local) submit(ctx context.Context, orders string) (string, error) {
	eng, err := embedded.Open(l.dir, nil, nil)
	if err != nil {
		return "", err
	}
	defer eng.Close()
	sub, err := eng.Submit(ctx, orders)
	return sub.BatchID, err
}

func (l *local) batch(ctx context.Context, id string) (sluice.Batch, error) {
	return l.ports.Ledger.GetBatch(ctx, id)
}

func (l *local) ledger() sluice.Ledger           { return l.ports.Ledger }
func (l *local) queues() map[string]sluice.Queue { return l.ports.Queues }
func (l *local) dlqs() map[string]sluice.Queue   { return l.ports.DLQs }

func (l *local) open(ctx context.Context, key string) (io.ReadCloser, error) {
	return l.ports.Blobs.Get(ctx, key)
}

func (l *local) emails(ctx context.Context, b sluice.Batch) (int, error) {
	m, err := filepath.Glob(filepath.Join(l.dir, wire.OutboxDir, "*.eml"))
	return len(m), err
}

func (l *local) close() error { return l.ports.Close() }

// aws: the four services on the emulators (or an external stack), with
// their own bucket, queues and tables.
type awsBackend struct {
	env_   *awstest.Env
	owned  bool
	cfg    aws.Config
	prefix string
	bucket string
	mailTo string
	ports  *wire.Ports
}

// endpoints gives each AWS client its emulator, as AWS_ENDPOINT_URL_<SERVICE>
// does, without touching this process's environment.
type endpoints map[string]string

func (e endpoints) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	v, ok := e[strings.ToUpper(strings.ReplaceAll(sdkID, " ", "_"))]
	return v, ok, nil
}

func newAWS(ctx context.Context, o Options, fin string, logf func(string, ...any)) (*awsBackend, error) {
	a := &awsBackend{env_: o.AWS}
	if a.env_ == nil {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		env, err := awstest.Start(sctx, awstest.S3, awstest.SQS, awstest.DynamoDB, awstest.SES)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("chaos: starting the AWS emulators: %w", err)
		}
		a.env_, a.owned = env, true
	}
	ok := false
	defer func() {
		if !ok {
			a.close()
		}
	}()
	id := fmt.Sprintf("chaos%d", time.Now().UnixNano()%1e9)
	a.prefix, a.bucket, a.mailTo = id+"-", id+"-bucket", "ops+"+id+"@example.com"
	a.cfg = aws.Config{
		Region:      awstest.Region,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		ConfigSources: []any{endpoints{
			"S3": a.env_.Endpoint(awstest.S3), "SQS": a.env_.Endpoint(awstest.SQS),
			"DYNAMODB": a.env_.Endpoint(awstest.DynamoDB), "SESV2": a.env_.Endpoint(awstest.SES),
		}},
	}
	if _, err := provision.Provision(ctx, a.cfg, provision.Options{Bucket: a.bucket, QueuePrefix: a.prefix, TablePrefix: a.prefix, MaxReceive: o.MaxReceive, PathStyle: true}); err != nil {
		return nil, err
	}
	wo := wire.AWSOptions{Bucket: a.bucket, QueuePrefix: a.prefix, TablePrefix: a.prefix, PathStyle: true}
	var err error
	if a.ports, err = wire.AWS(ctx, a.cfg, wo.AllQueues()); err != nil {
		return nil, err
	}
	t0 := time.Now()
	res, err := reference.LoadFile(ctx, a.ports.Catalog, fin, config.Default(), nil)
	n := res.Version.Rows
	if err != nil {
		return nil, fmt.Errorf("chaos: loading the reference into DynamoDB: %w", err)
	}
	logf("loaded %d reference rows into DynamoDB in %.1fs", n, time.Since(t0).Seconds())
	ok = true
	return a, nil
}

func (a *awsBackend) env() []string {
	e := []string{
		"SLUICE_BACKEND=aws",
		"AWS_REGION=" + awstest.Region, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_S3=" + a.env_.Endpoint(awstest.S3), "AWS_ENDPOINT_URL_SQS=" + a.env_.Endpoint(awstest.SQS),
		"AWS_ENDPOINT_URL_DYNAMODB=" + a.env_.Endpoint(awstest.DynamoDB), "AWS_ENDPOINT_URL_SESV2=" + a.env_.Endpoint(awstest.SES),
		"SLUICE_BUCKET=" + a.bucket, "SLUICE_QUEUE_PREFIX=" + a.prefix, "SLUICE_TABLE_PREFIX=" + a.prefix,
		"SLUICE_S3_PATH_STYLE=true", "SLUICE_MAIL_FROM=sluice@example.com", "SLUICE_MAIL_TO=" + a.mailTo,
	}
	return e
}

// submit uploads the file and sends the event S3 would send.
func (a *awsBackend) submit(ctx context.Context, orders string) (string, error) {
	f, err := os.Open(orders)
	if err != nil {
		return "", err
	}
	defer f.Close()
	key := pipeline.InputPrefix + filepath.Base(orders)
	info, err := a.ports.Blobs.Put(ctx, key, f)
	if err != nil {
		return "", err
	}
	seq := fmt.Sprintf("%016X", time.Now().UnixNano())
	body := awstest.ObjectCreated(a.bucket, key, info.Size, info.ETag, seq)
	if err := a.ports.Queues[pipeline.QueueIngest].Send(ctx, body); err != nil {
		return "", err
	}
	return sluice.BatchID(a.bucket, key, info.ETag, seq), nil
}

func (a *awsBackend) batch(ctx context.Context, id string) (sluice.Batch, error) {
	return a.ports.Ledger.GetBatch(ctx, id)
}

func (a *awsBackend) ledger() sluice.Ledger           { return a.ports.Ledger }
func (a *awsBackend) queues() map[string]sluice.Queue { return a.ports.Queues }
func (a *awsBackend) dlqs() map[string]sluice.Queue   { return a.ports.DLQs }

func (a *awsBackend) open(ctx context.Context, key string) (io.ReadCloser, error) {
	return a.ports.Blobs.Get(ctx, key)
}

// emails counts the mails to this run's recipient in aws-ses-v2-local's
// store (an external stack has no store: -1).
func (a *awsBackend) emails(ctx context.Context, b sluice.Batch) (int, error) {
	if a.env_.External() {
		return -1, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.env_.Endpoint(awstest.SES)+"/store", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var store struct {
		Emails []struct {
			Destination struct {
				To []string `json:"to"`
			} `json:"destination"`
		} `json:"emails"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&store); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range store.Emails {
		if len(e.Destination.To) == 1 && e.Destination.To[0] == a.mailTo {
			n++
		}
	}
	return n, nil
}

func (a *awsBackend) close() error {
	if a.owned {
		return a.env_.Close()
	}
	return nil
}
