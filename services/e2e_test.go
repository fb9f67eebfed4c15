// End-to-end tests of the four services as separate processes against the
// AWS emulators (or LocalStack, with SLUICE_TEST_ENDPOINT): the real
// binaries, the real SDK clients, S3-shaped events.
package services_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/provision"
	"github.com/sluicehq/sluice/pkg/reference"
	"github.com/sluicehq/sluice/pkg/s3blob"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqsqueue"
	"github.com/sluicehq/sluice/pkg/testenv"
)

var (
	bins     = map[string]string{}
	observed string // the file the services append their AWS calls to
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-services-")
	if err != nil {
		panic(err)
	}
	for _, s := range []string{"splitter", "worker", "merger", "notifier", "deliverer", "sluice"} {
		bins[s] = filepath.Join(dir, s)
		pkg := "./" + s
		if s == "sluice" {
			pkg = "../cmd/sluice"
		}
		if out, err := exec.Command("go", "build", "-o", bins[s], pkg).CombinedOutput(); err != nil {
			panic("building " + s + ": " + err.Error() + "\n" + string(out))
		}
	}
	// Every service started by any test here (e2e, crash, chaos) appends
	// the AWS calls it makes; after the tests they are held against the
	// Terraform's policies (privilege_test.go).
	observed = filepath.Join(dir, "observed-calls.jsonl")
	os.Setenv("SLUICE_TEST_OBSERVE_CALLS", observed)
	awstest.MainAfter(m, func(code int) int {
		code = checkObservedCalls(code)
		os.RemoveAll(dir)
		return code
	}, awstest.S3, awstest.S3Copy, awstest.SQS, awstest.DynamoDB, awstest.SES)
}

// stack is one isolated deployment: its own bucket, queues and tables.
type stack struct {
	t       *testing.T
	env     []string
	prefix  string
	bucket  string
	mailTo  string
	cfgFile string
	aws     *awstest.Env
	blobs   *s3blob.Store
	ledger  sluice.Ledger
	queues  map[string]*sqsqueue.Queue
	dlqs    map[string]*sqsqueue.Queue

	mu    sync.Mutex
	procs map[string]*proc
}

type proc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	addr   string
	done   chan struct{}
}

var seq int

func newStack(t *testing.T, chunkRows int) *stack {
	t.Helper()
	return newStackOn(t, chunkRows, awstest.S3)
}

// newStackOn is newStack on the S3 emulator s3svc.
func newStackOn(t *testing.T, chunkRows int, s3svc awstest.Service) *stack {
	t.Helper()
	seq++
	env := awstest.Shared(t)
	prefix := fmt.Sprintf("e2e%d%d-", time.Now().UnixNano()%1e6, seq)
	s := &stack{t: t, prefix: prefix, bucket: strings.TrimSuffix(prefix, "-") + "-bucket", aws: env, procs: map[string]*proc{},
		mailTo: "ops+" + strings.TrimSuffix(prefix, "-") + "@example.com"}
	s.cfgFile = filepath.Join(t.TempDir(), "pipeline.yaml")
	os.WriteFile(s.cfgFile, []byte(fmt.Sprintf("chunkRows: %d\n", chunkRows)), 0o644)
	s.env = []string{
		"AWS_REGION=" + awstest.Region, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_S3=" + env.Endpoint(s3svc), "AWS_ENDPOINT_URL_SQS=" + env.Endpoint(awstest.SQS),
		"AWS_ENDPOINT_URL_DYNAMODB=" + env.Endpoint(awstest.DynamoDB), "AWS_ENDPOINT_URL_SESV2=" + env.Endpoint(awstest.SES),
		"SLUICE_BUCKET=" + s.bucket, "SLUICE_QUEUE_PREFIX=" + prefix, "SLUICE_TABLE_PREFIX=" + prefix,
		"SLUICE_S3_PATH_STYLE=true", "SLUICE_WAIT=1s", "SLUICE_CONFIG=" + s.cfgFile,
		"SLUICE_MAIL_FROM=sluice@example.com", "SLUICE_MAIL_TO=" + s.mailTo, "SLUICE_LOG_LEVEL=debug",
	}
	// The in-test clients use the same chain the services do.
	for _, kv := range s.env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, v)
		}
	}
	ctx := t.Context()
	cfg, err := awsconfig.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := provision.Provision(ctx, cfg, provision.Options{Bucket: s.bucket, QueuePrefix: prefix, TablePrefix: prefix, MaxReceive: 3, PathStyle: true})
	if err != nil {
		t.Fatalf("provision: %v (%+v)", err, steps)
	}
	s.blobs = s3blob.New(cfg, s.bucket, s3blob.WithPathStyle())
	db := dynamoledger.New(cfg, dynamoledger.DefaultTables(prefix))
	s.ledger = db.Ledger()
	s.queues, s.dlqs = map[string]*sqsqueue.Queue{}, map[string]*sqsqueue.Queue{}
	client := sqs.NewFromConfig(cfg)
	for _, q := range pipeline.Queues() {
		for _, dlq := range []bool{false, true} {
			name := prefix + q
			if dlq {
				name += "-dlq"
			}
			u, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &name})
			if err != nil {
				t.Fatal(err)
			}
			if dlq {
				s.dlqs[q] = sqsqueue.New(cfg, *u.QueueUrl)
			} else {
				s.queues[q] = sqsqueue.New(cfg, *u.QueueUrl)
			}
		}
	}
	t.Cleanup(s.stopAll)
	return s
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs a service; extra env entries override the stack's.
func (s *stack) start(name string, extra ...string) *proc {
	s.t.Helper()
	addr := freeAddr(s.t)
	cmd := exec.Command(bins[name])
	cmd.Env = append(append(append(os.Environ(), s.env...), "SLUICE_HTTP_ADDR="+addr), extra...)
	p := &proc{cmd: cmd, stderr: &bytes.Buffer{}, addr: addr, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{w: p.stderr}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	// Ready once it has resolved its queues.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.done:
			s.t.Fatalf("%s exited at start: %s", name, p.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.t.Fatalf("%s not ready: %s", name, p.stderr.String())
	return nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (s *stack) startAll(extra ...string) {
	for _, n := range []string{"splitter", "worker", "merger", "notifier", "deliverer"} {
		s.start(n, extra...)
	}
}

func (s *stack) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, p := range s.procs {
		s.stopProc(name, p)
	}
	s.procs = map[string]*proc{}
}

// stop stops one service and forgets it.
func (s *stack) stop(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.procs[name]; p != nil {
		s.stopProc(name, p)
		delete(s.procs, name)
	}
}

func (s *stack) stopProc(name string, p *proc) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		s.t.Errorf("%s did not stop within 30s of SIGTERM", name)
	}
	checkLogs(s.t, name, p)
}

// checkLogs: a service's stderr is JSON lines only (the AWS SDK's own
// lines included), and credentials and presigned signatures never reach it.
func checkLogs(t *testing.T, name string, p *proc) {
	t.Helper()
	<-p.done
	logs := p.stderr.String()
	for _, secret := range []string{"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "SecretAccessKey", "AWS_SECRET_ACCESS_KEY"} {
		if strings.Contains(logs, secret) {
			t.Errorf("%s logged %s", name, secret)
		}
	}
	for i, line := range strings.Split(strings.TrimSuffix(logs, "\n"), "\n") {
		if line != "" && !json.Valid([]byte(line)) {
			t.Errorf("%s stderr line %d is not JSON: %q", name, i+1, tail(line, 300))
			break
		}
	}
	if t.Failed() {
		t.Logf("%s stderr:\n%s", name, tail(logs, 3000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// upload puts a file under input/ and returns the S3 event S3 would send.
func (s *stack) upload(local, name string) []byte { return s.put(local, "input/"+name) }

// put puts a file at key and returns the S3 event S3 would send.
func (s *stack) put(local, key string) []byte {
	s.t.Helper()
	f, err := os.Open(local)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	info, err := s.blobs.Put(s.t.Context(), key, f)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.event(key, info.Size, info.ETag)
}

// uploadNoChecksum puts a file as a client that sends no checksum does
// (older SDKs and many tools): reading it back, the SDK finds no checksum
// to validate and says so in a log line of its own, which must come out
// as JSON like every other line (issue 11, item 4).
func (s *stack) uploadNoChecksum(local, name string) []byte {
	s.t.Helper()
	body, err := os.ReadFile(local)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg, err := awsconfig.Load(s.t.Context())
	if err != nil {
		s.t.Fatal(err)
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = true
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
	key := "input/" + name
	out, err := c.PutObject(s.t.Context(), &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		s.t.Fatal(err)
	}
	return s.event(key, int64(len(body)), strings.Trim(aws.ToString(out.ETag), `"`))
}

// event is the S3 event S3 would send for an object just put.
func (s *stack) event(key string, size int64, etag string) []byte {
	seq := fmt.Sprintf("%016X", time.Now().UnixNano())
	ev := map[string]any{"Records": []any{map[string]any{
		"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": awstest.Region, "eventTime": time.Now().UTC().Format(time.RFC3339Nano),
		"eventName": "ObjectCreated:Put",
		"s3": map[string]any{"s3SchemaVersion": "1.0", "configurationId": "sluice-ingest",
			"bucket": map[string]any{"name": s.bucket, "arn": "arn:aws:s3:::" + s.bucket},
			"object": map[string]any{"key": strings.ReplaceAll(url.QueryEscape(key), "%2F", "/"), "size": size, "eTag": etag, "sequencer": seq}},
	}}}
	b, _ := json.Marshal(ev)
	return b
}

func (s *stack) send(q string, body []byte) {
	s.t.Helper()
	if err := s.queues[q].Send(s.t.Context(), body); err != nil {
		s.t.Fatal(err)
	}
}

// waitBatch waits for the batch of key to end and be notified.
func (s *stack) waitBatch(key string, within time.Duration) sluice.Batch {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		bs, err := s.ledger.ListBatches(s.t.Context(), sluice.BatchFilter{Key: key})
		if err != nil {
			s.t.Fatal(err)
		}
		for _, b := range bs {
			if b.State.Terminal() && b.EmailID != "" {
				return b
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	bs, _ := s.ledger.ListBatches(s.t.Context(), sluice.BatchFilter{Key: key})
	s.t.Fatalf("no notified batch for %s within %v; batches: %+v", key, within, bs)
	return sluice.Batch{}
}

func (s *stack) get(key string) []byte {
	s.t.Helper()
	r, err := s.blobs.Get(s.t.Context(), key)
	if err != nil {
		s.t.Fatal(err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return b
}

type storedMail struct {
	MessageID   string `json:"messageId"`
	Subject     string `json:"subject"`
	Destination struct {
		To []string `json:"to"`
	} `json:"destination"`
	Body struct {
		Text string `json:"text"`
		HTML string `json:"html"`
	} `json:"body"`
}

// mails returns the emails this stack's notifier sent (aws-ses-v2-local's /store).
func (s *stack) mails() []storedMail {
	resp, err := http.Get(s.aws.Endpoint(awstest.SES) + "/store")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var store struct {
		Emails []storedMail `json:"emails"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&store); err != nil {
		s.t.Fatal(err)
	}
	var out []storedMail
	for _, e := range store.Emails {
		if len(e.Destination.To) == 1 && e.Destination.To[0] == s.mailTo {
			out = append(out, e)
		}
	}
	return out
}

// embeddedOutput runs the same file on the embedded pipeline.
func embeddedOutput(t *testing.T, chunkRows int, orders, fin string) (out, errs []byte, b sluice.Batch) {
	cfg := config.Default()
	cfg.ChunkRows = chunkRows
	eng, err := embedded.Open(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, _, err := eng.LoadReference(ctx, fin, nil); err != nil {
		t.Fatal(err)
	}
	if _, b, err = eng.Process(ctx, orders, nil, nil); err != nil {
		t.Fatal(err)
	}
	out, _ = os.ReadFile(eng.Path(b.OutputKey))
	errs, _ = os.ReadFile(eng.Path(b.ErrorsKey))
	return out, errs, b
}

func loadReference(t *testing.T, s *stack, fin string) {
	cfg, _ := awsconfig.Load(t.Context())
	if _, err := reference.LoadFile(t.Context(), dynamoledger.New(cfg, dynamoledger.DefaultTables(s.prefix)).Catalog(), fin, config.Default(), nil); err != nil {
		t.Fatal(err)
	}
}

var linkRe = regexp.MustCompile(`Output:\s+(\S+)`)

func checkBatch(t *testing.T, s *stack, b sluice.Batch, wantOut, wantErrs []byte, wantRejected int) {
	t.Helper()
	if b.State != sluice.StateCompleted {
		t.Fatalf("batch %s: %s (%s)", b.ID, b.State, b.Reason)
	}
	if got := s.get(b.OutputKey); !bytes.Equal(got, wantOut) {
		t.Fatalf("output differs from the embedded run's (%d vs %d bytes)", len(got), len(wantOut))
	}
	if got := s.get(b.ErrorsKey); !bytes.Equal(got, wantErrs) {
		t.Fatalf("error report differs from the embedded run's:\n%s\nvs\n%s", tail(string(got), 500), tail(string(wantErrs), 500))
	}
	rej, err := s.ledger.Rejects(t.Context(), b.ID, 0, 1_000_000)
	if err != nil || len(rej) != wantRejected || b.RowsRejected != wantRejected {
		t.Fatalf("rejects table holds %d rows (%v), batch says %d; want %d", len(rej), err, b.RowsRejected, wantRejected)
	}
}

func checkOneMail(t *testing.T, s *stack, b sluice.Batch, want []byte) {
	t.Helper()
	var mine []storedMail
	for _, m := range s.mails() {
		if strings.Contains(m.Subject, b.Name) {
			mine = append(mine, m)
		}
	}
	if len(mine) != 1 {
		t.Fatalf("%d emails for %s, want exactly 1", len(mine), b.Name)
	}
	link := linkRe.FindStringSubmatch(mine[0].Body.Text)
	if link == nil || !strings.Contains(link[1], "X-Amz-Signature=") {
		t.Fatalf("no presigned output link in the email:\n%s", mine[0].Body.Text)
	}
	got, err := testenv.Fetch(t.Context(), link[1])
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the emailed link gave %d bytes (%v), want the output", len(got), err)
	}
	if !strings.Contains(mine[0].Body.Text, "stop working at") {
		t.Fatalf("the email does not say when the links expire:\n%s", mine[0].Body.Text)
	}
}

func TestSeedAndGeneratedFilesThroughFourServices(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	dir := t.TempDir()
	gOrders, gFin, st, err := gen.WriteFiles(dir, gen.Options{Rows: 12000, Seed: 5, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	// One reference holding both files' keys.
	both := filepath.Join(dir, "both.csv")
	a, _ := os.ReadFile(fin)
	g, _ := os.ReadFile(gFin)
	os.WriteFile(both, append(append(bytes.TrimRight(a, "\r\n"), '\n'), g[bytes.IndexByte(g, '\n')+1:]...), 0o644)

	const chunkRows = 4000
	s := newStack(t, chunkRows)
	loadReference(t, s, both)
	s.startAll()

	s.send("ingest", s.upload(orders, "testfile.csv"))
	s.send("ingest", s.uploadNoChecksum(gOrders, "generated orders.csv")) // a space: URL-encoded as '+' in the event
	seedB := s.waitBatch("input/testfile.csv", 2*time.Minute)
	genB := s.waitBatch("input/generated orders.csv", 2*time.Minute)

	wantOut, wantErrs, _ := embeddedOutput(t, chunkRows, orders, both)
	checkBatch(t, s, seedB, wantOut, wantErrs, 0)
	checkOneMail(t, s, seedB, wantOut)
	if seedB.RowsOut != 10000 {
		t.Fatalf("seed: %d rows out", seedB.RowsOut)
	}
	gOut, gErrs, _ := embeddedOutput(t, chunkRows, gOrders, both)
	checkBatch(t, s, genB, gOut, gErrs, st.Bad)
	checkOneMail(t, s, genB, gOut)
	// The inputs were archived.
	if _, err := s.blobs.Stat(t.Context(), pipeline.ArchiveKey(genB)); err != nil {
		t.Fatalf("not archived: %v", err)
	}
}

func TestEveryMessageTwice(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	const chunkRows = 3000
	s := newStack(t, chunkRows)
	loadReference(t, s, fin)
	s.startAll("SLUICE_TEST_DUPLICATE_SENDS=true")
	ev := s.upload(orders, "testfile.csv")
	s.send("ingest", ev)
	s.send("ingest", ev) // the duplicate S3 event
	b := s.waitBatch("input/testfile.csv", 2*time.Minute)
	wantOut, wantErrs, _ := embeddedOutput(t, chunkRows, orders, fin)
	checkBatch(t, s, b, wantOut, wantErrs, 0)
	// Let the duplicates drain, then count batches and emails.
	time.Sleep(3 * time.Second)
	bs, _ := s.ledger.ListBatches(t.Context(), sluice.BatchFilter{})
	if len(bs) != 1 {
		t.Fatalf("%d batches from one upload", len(bs))
	}
	checkOneMail(t, s, b, wantOut)
}

func metric(t *testing.T, addr, name string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func TestPoisonMessagesReachTheDLQ(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	s := newStack(t, 10000)
	loadReference(t, s, fin)
	s.startAll()
	splitter := s.procs["splitter"]
	s.send("ingest", []byte(`{not json`))
	s.send("ingest", []byte(`{"v":99,"bucket":"x","key":"input/x.csv"}`))
	s.send("merge", []byte(`{"v":1,"batchId":"no-such-batch"}`))
	s.send("chunks", []byte(`{not json`))
	s.send("notify", []byte(`{not json`))
	// An event for an object that is not there: the batch fails, explained.
	ev := s.upload(orders, "gone.csv")
	if err := s.blobs.Delete(t.Context(), "input/gone.csv"); err != nil {
		t.Fatal(err)
	}
	s.send("ingest", ev)
	// A file that fails, under a 300-byte name: its input is archived
	// under the batch, and the email gives the s3:// URI (issue 10
	// findings 3 and 6, issue 11 item 9).
	badFile := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(badFile, []byte("a;b\n1;2\n"), 0o644)
	longName := strings.Repeat("ü", 148) + ".csv"
	s.send("ingest", s.upload(badFile, longName))
	// The pipeline keeps going meanwhile.
	s.send("ingest", s.upload(orders, "testfile.csv"))
	ok := s.waitBatch("input/testfile.csv", 2*time.Minute)
	if ok.State != sluice.StateCompleted || ok.RowsOut != 10000 {
		t.Fatalf("good file: %s %d", ok.State, ok.RowsOut)
	}
	gone := s.waitBatch("input/gone.csv", time.Minute)
	if gone.State != sluice.StateFailed || !strings.Contains(gone.Reason, "deleted before it could be read") {
		t.Fatalf("deleted object: %s %q", gone.State, gone.Reason)
	}
	bad := s.waitBatch("input/"+longName, time.Minute)
	uri := pipeline.S3URI(s.bucket, pipeline.ArchiveKey(bad))
	if bad.State != sluice.StateFailed || bad.Name != longName {
		t.Fatalf("bad file: %s %q, name kept %v", bad.State, bad.Reason, bad.Name == longName)
	}
	if got := s.get(pipeline.ArchiveKey(bad)); string(got) != "a;b\n1;2\n" {
		t.Fatalf("archive %s holds %q", uri, got)
	}
	named := false
	for _, m := range s.mails() {
		named = named || strings.Contains(m.Body.Text, uri)
	}
	if !named {
		t.Fatalf("no failure email names %s", uri)
	}
	deadline := time.Now().Add(30 * time.Second)
	var dead []sluice.Message
	for len(dead) < 2 && time.Now().Before(deadline) {
		ms, _ := s.dlqs["ingest"].Receive(t.Context(), 10, time.Minute, time.Second)
		dead = append(dead, ms...)
	}
	if len(dead) != 2 {
		t.Fatalf("ingest DLQ holds %d messages, want the 2 poison ones", len(dead))
	}
	for _, q := range []string{"merge", "chunks", "notify"} {
		dead, _ := s.dlqs[q].Receive(t.Context(), 10, time.Minute, 2*time.Second)
		if len(dead) != 1 {
			t.Fatalf("%s DLQ holds %d messages, want 1", q, len(dead))
		}
	}
	m := metric(t, splitter.addr, "sluice_messages_dead_lettered_total")
	if !strings.Contains(m, `reason="malformed"`) || !strings.Contains(m, `reason="unknown_version"`) {
		t.Fatalf("splitter metrics:\n%s", m)
	}
	if !strings.Contains(m, `reason="malformed",stage="split"} 1`) {
		t.Fatalf("splitter metrics:\n%s", m)
	}
	time.Sleep(200 * time.Millisecond)
	if log := splitter.stderr.String(); !strings.Contains(log, "dead-letter") || !strings.Contains(log, `"reason":"malformed"`) {
		t.Fatalf("no log line for the dead-lettered message:\n%s", tail(log, 2000))
	}
}

// TestSIGTERMDuringAChunk stops a worker in the middle of a chunk: it must
// exit within its stop timeout and the chunk must be counted exactly once.
func TestSIGTERMDuringAChunk(t *testing.T) {
	dir := t.TempDir()
	orders, fin, st, err := gen.WriteFiles(dir, gen.Options{Rows: 40000, Seed: 8, BadRate: 0.03})
	if err != nil {
		t.Fatal(err)
	}
	const chunkRows = 20000 // two large chunks: the emulated DynamoDB makes each take a while
	s := newStack(t, chunkRows)
	loadReference(t, s, fin)
	for _, n := range []string{"splitter", "merger", "notifier"} {
		s.start(n)
	}
	w := s.start("worker", "SLUICE_DRAIN=20s", "SLUICE_CONCURRENCY=1")
	s.send("ingest", s.upload(orders, "orders.csv"))
	// Wait until the worker has a chunk in hand.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if strings.Contains(metric(t, w.addr, "sluice_messages_received_total"), `stage="process"} 1`) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t0 := time.Now()
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not exit within 30s of SIGTERM")
	}
	t.Logf("worker stopped %v after SIGTERM", time.Since(t0).Round(time.Millisecond))
	if !strings.Contains(w.stderr.String(), `"msg":"stopped"`) {
		t.Fatalf("worker did not stop cleanly:\n%s", tail(w.stderr.String(), 2000))
	}
	s.start("worker") // the rest of the batch
	b := s.waitBatch("input/orders.csv", 3*time.Minute)
	wantOut, wantErrs, _ := embeddedOutput(t, chunkRows, orders, fin)
	checkBatch(t, s, b, wantOut, wantErrs, st.Bad)
	if b.DoneChunks != 2 || b.TotalChunks != 2 {
		t.Fatalf("chunks %d/%d", b.DoneChunks, b.TotalChunks)
	}
}
