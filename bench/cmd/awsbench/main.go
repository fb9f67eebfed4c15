// Command awsbench runs one generated file through the four services as
// separate processes against the AWS emulators (the AWS path), once per
// layout (-layouts: the seed's copied chunks with 10,000-row chunks, and
// the default), and reports for each the wall time from upload to email,
// every AWS API call the services and the uploader made (the SDK middleware
// in pkg/awsconfig, read back from each service's /metrics) priced at list
// prices, and the S3 requests and payload bytes by operation as counted on
// the wire by pkg/awstest: per million rows, and the saving of the default
// over the copied layout. `make bench-aws`; see BENCHMARKS.md.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/cost"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/provision"
	"github.com/sluicehq/sluice/pkg/reference"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "awsbench:", err)
		os.Exit(1)
	}
}

// bench is one awsbench run: its flags and what it has started.
type bench struct {
	rows, refRows, workers *int
	timeout                *time.Duration
	dir                    string // absolute
	out                    io.Writer
	env                    *awstest.Env
	procs                  []*exec.Cmd
	addrs                  []string
	config                 string // SLUICE_CONFIG of the services being started
}

// The resources the bench provisions on the emulators.
const bucket, prefix = "bench-bucket", "bench-"

func (b *bench) logf(f string, a ...any) { fmt.Fprintf(b.out, "awsbench: "+f+"\n", a...) }

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("awsbench", flag.ContinueOnError)
	b := &bench{out: out}
	b.rows = fs.Int("rows", 1_000_000, "order `rows` to generate and run")
	b.refRows = fs.Int("ref-rows", 100_000, "reference rows the orders reuse (loading the emulated table is slow: ~1M rows would take minutes)")
	b.workers = fs.Int("workers", 1, "worker processes")
	dir := fs.String("out", "bench/out/aws", "`directory` for the data and the service logs")
	b.timeout = fs.Duration("timeout", 10*time.Minute, "how long the batch may take")
	s3 := fs.String("s3", "s3rver", "the S3 emulator: s3rver (does UploadPartCopy) or gofakes3 (does not: merges stream)")
	layoutList := fs.String("layouts", "copy-chunks,default", "comma-separated `layouts` to run: "+strings.Join(layoutNames(), ", "))
	if err := fs.Parse(args); err != nil {
		return err
	}
	ls, err := pickLayouts(*layoutList)
	if err != nil {
		return err
	}
	s3svc := map[string]awstest.Service{"s3rver": awstest.S3Copy, "gofakes3": awstest.S3}[*s3]
	if s3svc == "" {
		return fmt.Errorf("-s3 %q: want s3rver or gofakes3", *s3)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	b.dir, _ = filepath.Abs(*dir)
	b.logf("generating %d orders reusing %d reference keys", *b.rows, *b.refRows)
	orders, fin, st, err := gen.WriteFiles(filepath.Join(b.dir, "input"), gen.Options{Rows: *b.rows, RefRows: *b.refRows, Seed: 1, BadRate: 0.03})
	if err != nil {
		return err
	}
	if err := b.buildServices(ctx); err != nil {
		return err
	}
	b.logf("starting the emulators (S3: %s)", *s3)
	env, err := awstest.Start(ctx, s3svc, awstest.SQS, awstest.DynamoDB, awstest.SES)
	if err != nil {
		return err
	}
	defer env.Close()
	b.env = env
	if err := b.setup(ctx, env, s3svc, fin); err != nil {
		return err
	}
	defer b.stopServices()
	var results []result
	for _, l := range ls {
		r, err := b.runLayout(ctx, l, orders, st)
		if err != nil {
			return fmt.Errorf("layout %s: %w", l.name, err)
		}
		results = append(results, r)
	}
	printS3(b.out, results)
	for _, r := range results[1:] {
		if !slices.Equal(r.sums, results[0].sums) {
			return fmt.Errorf("layout %s's output and error report differ from layout %s's: sha256 %v, %v", r.layout.name, results[0].layout.name, r.sums, results[0].sums)
		}
	}
	fmt.Fprintf(b.out, "outputs byte-identical across the layouts: output and error report sha256 %v\n", results[0].sums)
	return nil
}

// runLayout starts the services with the layout's configuration, runs the
// file through them, checks the batch, reports it and stops the services.
func (b *bench) runLayout(ctx context.Context, l layout, orders string, st gen.Stats) (result, error) {
	b.config = filepath.Join(b.dir, l.name+".yaml")
	if err := os.WriteFile(b.config, []byte(l.config), 0o644); err != nil {
		return result{}, err
	}
	b.logf("layout %s: %s", l.name, l.about)
	if err := b.startServices(ctx); err != nil {
		return result{}, err
	}
	defer func() {
		b.stopServices()
		// local-aws-sqs keeps a stopped consumer's long poll open until its
		// wait ends and would hand that poll the next layout's first
		// message, hidden for the visibility timeout (2 min).
		time.Sleep(2 * time.Second)
	}()
	var jobCalls awsconfig.Counts
	batch, wall, s3ops, err := b.job(ctx, orders, "input/orders-"+l.name+".csv", &jobCalls)
	if err != nil {
		return result{}, err
	}
	if batch.State != sluice.StateCompleted || batch.RowsIn != st.Rows || batch.RowsRejected != st.Bad {
		return result{}, fmt.Errorf("batch %s: rows in %d rejected %d, gen made %d and %d bad", batch.State, batch.RowsIn, batch.RowsRejected, st.Rows, st.Bad)
	}
	sums, err := b.digests(ctx, batch.OutputKey, batch.ErrorsKey) // after the traffic was taken
	if err != nil {
		return result{}, err
	}
	fmt.Fprintf(b.out, "\n== layout %s\n", l.name)
	if err := b.report(ctx, batch, wall, &jobCalls); err != nil {
		return result{}, err
	}
	return result{layout: l, rows: batch.RowsIn, chunks: batch.TotalChunks, wall: wall, ops: s3ops, sums: sums}, nil
}

// digests reads the batch's outputs back and returns their SHA-256s, so
// that layouts can be checked to give the same bytes.
func (b *bench) digests(ctx context.Context, keys ...string) ([]string, error) {
	cfg, err := awsconfig.Load(ctx)
	if err != nil {
		return nil, err
	}
	ports, err := wire.AWS(ctx, cfg, wire.AWSOptions{Bucket: bucket, QueuePrefix: prefix, TablePrefix: prefix, PathStyle: true})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range keys {
		r, err := ports.Blobs.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, hex.EncodeToString(h.Sum(nil)))
	}
	return out, nil
}

// buildServices builds the four service binaries under DIR/bin.
func (b *bench) buildServices(ctx context.Context) error {
	for _, s := range pipeline.Services() {
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(b.dir, "bin", s), "./services/"+s).CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v\n%s", s, err, out)
		}
	}
	return nil
}

// setup points this process's SDK at the emulators (the services inherit
// it), provisions the bucket, queues and tables, and loads the reference.
// None of it is timed.
func (b *bench) setup(ctx context.Context, env *awstest.Env, s3svc awstest.Service, fin string) error {
	for _, kv := range []string{
		"AWS_REGION=" + awstest.Region, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_S3=" + env.Endpoint(s3svc), "AWS_ENDPOINT_URL_SQS=" + env.Endpoint(awstest.SQS),
		"AWS_ENDPOINT_URL_DYNAMODB=" + env.Endpoint(awstest.DynamoDB), "AWS_ENDPOINT_URL_SESV2=" + env.Endpoint(awstest.SES),
	} {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	var setupCalls awsconfig.Counts
	cfg, err := awsconfig.Load(ctx, &setupCalls)
	if err != nil {
		return err
	}
	if _, err := provision.Provision(ctx, cfg, provision.Options{Bucket: bucket, QueuePrefix: prefix, TablePrefix: prefix, PathStyle: true}); err != nil {
		return err
	}
	ports, err := wire.AWS(ctx, cfg, wire.AWSOptions{Bucket: bucket, QueuePrefix: prefix, TablePrefix: prefix, PathStyle: true})
	if err != nil {
		return err
	}
	t0 := time.Now()
	res, err := reference.LoadFile(ctx, ports.Catalog, fin, config.Default(), nil)
	n := res.Version.Rows
	if err != nil {
		return err
	}
	b.logf("loaded %d reference rows into the emulated table in %.1fs (setup, not timed)", n, time.Since(t0).Seconds())
	return nil
}

// startServices starts one process of each stage and -workers chunk
// workers, each serving /metrics on a free port, and waits until all are
// ready.
func (b *bench) startServices(ctx context.Context) error {
	var stages []string
	for _, s := range pipeline.Topology {
		n := 1
		if s.Concurrency == 0 { // the stage that scales out: chunk workers
			n = *b.workers
		}
		for range n {
			stages = append(stages, s.Service)
		}
	}
	for _, s := range stages {
		if err := b.start(s); err != nil {
			return err
		}
	}
	for _, a := range b.addrs {
		if err := waitReady(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) start(stage string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(filepath.Join(b.dir, "bin", stage))
	cmd.Env = append(os.Environ(), "SLUICE_BUCKET="+bucket, "SLUICE_QUEUE_PREFIX="+prefix, "SLUICE_TABLE_PREFIX="+prefix,
		"SLUICE_S3_PATH_STYLE=true", "SLUICE_WAIT=1s", "SLUICE_HTTP_ADDR="+addr,
		"SLUICE_MAIL_FROM=sluice@example.com", "SLUICE_MAIL_TO=bench@example.com", "SLUICE_CONFIG="+b.config)
	logFile, err := os.Create(filepath.Join(b.dir, strings.TrimSuffix(filepath.Base(b.config), ".yaml")+"-"+stage+"-"+strconv.Itoa(len(b.procs))+".log"))
	if err != nil {
		return err
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	b.procs = append(b.procs, cmd)
	b.addrs = append(b.addrs, addr)
	return nil
}

func (b *bench) stopServices() {
	for _, p := range b.procs {
		p.Process.Signal(syscall.SIGTERM)
		p.Wait()
	}
	b.procs, b.addrs = nil, nil
}

// job uploads the orders as key, sends the S3 event the emulator does
// not, and follows the batch until it is mailed: the timed part, with its
// AWS calls counted in calls. It returns the S3 traffic on the wire from
// the end of the upload to the email: the services' own.
func (b *bench) job(ctx context.Context, orders, key string, calls *awsconfig.Counts) (sluice.Batch, time.Duration, awstest.Ops, error) {
	cfg, err := awsconfig.Load(ctx, calls)
	if err != nil {
		return sluice.Batch{}, 0, nil, err
	}
	o := wire.AWSOptions{Bucket: bucket, QueuePrefix: prefix, TablePrefix: prefix, PathStyle: true, Sends: []string{pipeline.QueueIngest}}
	ports, err := wire.AWS(ctx, cfg, o)
	if err != nil {
		return sluice.Batch{}, 0, nil, err
	}
	in, err := os.Open(orders)
	if err != nil {
		return sluice.Batch{}, 0, nil, err
	}
	defer in.Close()
	b.logf("uploading %s as %s and sending its S3 event", orders, key)
	begin := time.Now()
	info, err := ports.Blobs.Put(ctx, key, in)
	if err != nil {
		return sluice.Batch{}, 0, nil, err
	}
	before := b.env.S3Traffic(bucket)
	ev := awstest.ObjectCreated(bucket, key, info.Size, info.ETag, "01")
	if err := ports.Queues[pipeline.QueueIngest].Send(ctx, ev); err != nil {
		return sluice.Batch{}, 0, nil, err
	}
	batch, err := b.follow(ctx, ports.Ledger, key, begin)
	wall := time.Since(begin)
	return batch, wall, b.env.S3Traffic(bucket).Sub(before), err
}

// follow polls the batches table until the batch is final and mailed.
func (b *bench) follow(ctx context.Context, ledger sluice.Ledger, key string, begin time.Time) (sluice.Batch, error) {
	var batch sluice.Batch
	deadline := time.Now().Add(*b.timeout)
	last := ""
	for {
		bs, err := ledger.ListBatches(ctx, sluice.BatchFilter{Key: key})
		if err != nil {
			return batch, err
		}
		if len(bs) > 0 {
			batch = bs[0]
			if p := fmt.Sprintf("%s %d/%d", batch.State, batch.DoneChunks, batch.TotalChunks); p != last {
				b.logf("%6.1fs  %s chunks", time.Since(begin).Seconds(), p)
				last = p
			}
			if batch.State.Terminal() && batch.EmailID != "" {
				return batch, nil
			}
		}
		if time.Now().After(deadline) {
			return batch, fmt.Errorf("the batch did not finish within %v (last: %s)", *b.timeout, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// report adds the services' AWS calls (scraped from their /metrics) to the
// job's own and prints the time and the cost.
func (b *bench) report(ctx context.Context, batch sluice.Batch, wall time.Duration, jobCalls *awsconfig.Counts) error {
	calls, items := map[string]float64{}, map[string]float64{}
	for k, v := range jobCalls.Snapshot() {
		calls[k] += float64(v)
	}
	for k, v := range jobCalls.Items() {
		items[k] += float64(v)
	}
	for _, a := range b.addrs {
		if err := scrape(ctx, a, calls, items); err != nil {
			return err
		}
	}
	fmt.Fprintf(b.out, "\nAWS path (four services as processes, %d worker process(es), emulators on loopback)\n", *b.workers)
	fmt.Fprintf(b.out, "rows %d, rejected %d, chunks %d: %.1fs from upload to email, %.0f rows/s\n\n", batch.RowsIn, batch.RowsRejected, batch.TotalChunks, wall.Seconds(), float64(batch.RowsIn)/wall.Seconds())
	lines, total := cost.Estimate(calls, items)
	cost.Print(b.out, lines, total, batch.RowsIn)
	return nil
}

func waitReady(ctx context.Context, addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("service on %s not ready", addr)
}

// scrape adds a service's sluice_aws_calls_total and sluice_aws_items_total.
func scrape(ctx context.Context, addr string, calls, items map[string]float64) error {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		var dst map[string]float64
		switch {
		case strings.HasPrefix(line, "sluice_aws_calls_total{"):
			dst = calls
		case strings.HasPrefix(line, "sluice_aws_items_total{"):
			dst = items
		default:
			continue
		}
		labels := line[strings.IndexByte(line, '{')+1 : strings.IndexByte(line, '}')]
		var svc, op string
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			v = strings.Trim(v, `"`)
			switch k {
			case "service":
				svc = v
			case "operation":
				op = v
			}
		}
		val, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return err
		}
		dst[svc+"/"+op] += val
	}
	return sc.Err()
}
