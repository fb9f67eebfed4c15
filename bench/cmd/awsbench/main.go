// Command awsbench runs one generated file through the four services as
// separate processes against the AWS emulators (the AWS path), reports the
// wall time from upload to email, counts every AWS API call the services
// and the uploader made (the SDK middleware in pkg/awsconfig, read back from
// each service's /metrics), and prices them at list prices: the cost per
// million rows. `make bench-aws`; see BENCHMARKS.md.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/cost"
	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/provision"
	"github.com/sluicehq/sluice/pkg/s3blob"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqsqueue"
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

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("awsbench", flag.ContinueOnError)
	rows := fs.Int("rows", 1_000_000, "order `rows` to generate and run")
	refRows := fs.Int("ref-rows", 100_000, "reference rows the orders reuse (loading the emulated table is slow: ~1M rows would take minutes)")
	workers := fs.Int("workers", 1, "worker processes")
	dir := fs.String("out", "bench/out/aws", "`directory` for the data and the service logs")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long the batch may take")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logf := func(f string, a ...any) { fmt.Fprintf(out, "awsbench: "+f+"\n", a...) }
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	abs, _ := filepath.Abs(*dir)

	logf("generating %d orders reusing %d reference keys", *rows, *refRows)
	orders, fin, st, err := gen.WriteFiles(filepath.Join(abs, "input"), gen.Options{Rows: *rows, RefRows: *refRows, Seed: 1, BadRate: 0.03})
	if err != nil {
		return err
	}
	bins := filepath.Join(abs, "bin")
	for _, s := range []string{"splitter", "worker", "merger", "notifier"} {
		if b, err := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bins, s), "./services/"+s).CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v\n%s", s, err, b)
		}
	}
	logf("starting the emulators")
	env, err := awstest.Start(ctx, awstest.S3, awstest.SQS, awstest.DynamoDB, awstest.SES)
	if err != nil {
		return err
	}
	defer env.Close()
	awsEnv := []string{
		"AWS_REGION=" + awstest.Region, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_S3=" + env.Endpoint(awstest.S3), "AWS_ENDPOINT_URL_SQS=" + env.Endpoint(awstest.SQS),
		"AWS_ENDPOINT_URL_DYNAMODB=" + env.Endpoint(awstest.DynamoDB), "AWS_ENDPOINT_URL_SESV2=" + env.Endpoint(awstest.SES),
	}
	for _, kv := range awsEnv {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	var setupCalls, jobCalls awsconfig.Counts
	setupCfg, err := awsconfig.Load(ctx, &setupCalls)
	if err != nil {
		return err
	}
	const bucket, prefix = "bench-bucket", "bench-"
	if _, err := provision.Provision(ctx, setupCfg, provision.Options{Bucket: bucket, QueuePrefix: prefix, TablePrefix: prefix, PathStyle: true}); err != nil {
		return err
	}
	t0 := time.Now()
	f, err := os.Open(fin)
	if err != nil {
		return err
	}
	db := dynamoledger.New(setupCfg, dynamoledger.DefaultTables(prefix))
	n, err := embedded.LoadCatalog(ctx, db.Catalog(), f, config.Default(), nil)
	f.Close()
	if err != nil {
		return err
	}
	logf("loaded %d reference rows into the emulated table in %.1fs (setup, not timed)", n, time.Since(t0).Seconds())

	var procs []*exec.Cmd
	var addrs []string
	start := func(stage string) error {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr := l.Addr().String()
		l.Close()
		cmd := exec.Command(filepath.Join(bins, stage))
		cmd.Env = append(os.Environ(), "SLUICE_BUCKET="+bucket, "SLUICE_QUEUE_PREFIX="+prefix, "SLUICE_TABLE_PREFIX="+prefix,
			"SLUICE_S3_PATH_STYLE=true", "SLUICE_WAIT=1s", "SLUICE_HTTP_ADDR="+addr,
			"SLUICE_MAIL_FROM=sluice@example.com", "SLUICE_MAIL_TO=bench@example.com")
		logFile, err := os.Create(filepath.Join(abs, stage+"-"+strconv.Itoa(len(procs))+".log"))
		if err != nil {
			return err
		}
		cmd.Stderr = logFile
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, cmd)
		addrs = append(addrs, addr)
		return nil
	}
	defer func() {
		for _, p := range procs {
			p.Process.Signal(syscall.SIGTERM)
			p.Wait()
		}
	}()
	stages := []string{"splitter", "merger", "notifier"}
	for range *workers {
		stages = append(stages, "worker")
	}
	for _, s := range stages {
		if err := start(s); err != nil {
			return err
		}
	}
	for _, a := range addrs {
		if err := waitReady(ctx, a); err != nil {
			return err
		}
	}

	jobCfg, err := awsconfig.Load(ctx, &jobCalls)
	if err != nil {
		return err
	}
	blobs := s3blob.New(jobCfg, bucket, s3blob.WithPathStyle())
	ledger := dynamoledger.New(jobCfg, dynamoledger.DefaultTables(prefix)).Ledger()
	in, err := os.Open(orders)
	if err != nil {
		return err
	}
	logf("uploading %s and sending its S3 event", orders)
	begin := time.Now()
	info, err := blobs.Put(ctx, "input/orders.csv", in)
	in.Close()
	if err != nil {
		return err
	}
	ingestURL, err := sqsqueue.URLOf(ctx, jobCfg, prefix+"ingest")
	if err != nil {
		return err
	}
	ev, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{
		"eventVersion": "2.1", "eventSource": "aws:s3", "eventTime": time.Now().UTC().Format(time.RFC3339Nano), "eventName": "ObjectCreated:CompleteMultipartUpload",
		"s3": map[string]any{"bucket": map[string]any{"name": bucket}, "object": map[string]any{"key": url.QueryEscape("input/orders.csv"), "size": info.Size, "eTag": info.ETag, "sequencer": "01"}},
	}}})
	if err := sqsqueue.New(jobCfg, ingestURL).Send(ctx, ev); err != nil {
		return err
	}
	var b sluice.Batch
	deadline := time.Now().Add(*timeout)
	last := ""
	for {
		bs, err := ledger.ListBatches(ctx, sluice.BatchFilter{Key: "input/orders.csv"})
		if err != nil {
			return err
		}
		if len(bs) > 0 {
			b = bs[0]
			if p := fmt.Sprintf("%s %d/%d", b.State, b.DoneChunks, b.TotalChunks); p != last {
				logf("%6.1fs  %s chunks", time.Since(begin).Seconds(), p)
				last = p
			}
			if b.State.Terminal() && b.EmailID != "" {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the batch did not finish within %v (last: %s)", *timeout, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
	wall := time.Since(begin)
	if b.State != sluice.StateCompleted || b.RowsIn != st.Rows || b.RowsRejected != st.Bad {
		return fmt.Errorf("batch %s: rows in %d rejected %d, gen made %d and %d bad", b.State, b.RowsIn, b.RowsRejected, st.Rows, st.Bad)
	}

	calls, items := map[string]float64{}, map[string]float64{}
	for k, v := range jobCalls.Snapshot() {
		calls[k] += float64(v)
	}
	for k, v := range jobCalls.Items() {
		items[k] += float64(v)
	}
	for _, a := range addrs {
		if err := scrape(ctx, a, calls, items); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "\nAWS path (four services as processes, %d worker process(es), emulators on loopback)\n", *workers)
	fmt.Fprintf(out, "rows %d, rejected %d, chunks %d: %.1fs from upload to email, %.0f rows/s\n\n", b.RowsIn, b.RowsRejected, b.TotalChunks, wall.Seconds(), float64(b.RowsIn)/wall.Seconds())
	lines, total := cost.Estimate(calls, items)
	cost.Print(out, lines, total, b.RowsIn)
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
