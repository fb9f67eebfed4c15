// Package awstest gives the tests of the AWS adapters (pkg/s3blob,
// pkg/sqsqueue, pkg/dynamoledger, pkg/sesmail) real endpoints to talk to, so
// that they exercise the real SDK clients over HTTP instead of mocks. Where
// an emulator departs from AWS in a way the code under test would notice,
// the correction lives here (sqsCounts), not in the adapters.
//
// By default it starts emulators on loopback, each on a free port, for the
// life of one test binary: S3 is gofakes3 in-process; S3Copy, a second S3
// for what gofakes3 lacks (UploadPartCopy), is @20minutes/s3rver behind a
// proxy that enforces S3's multipart rules and If-Match conditions and
// gives S3's ETags (s3copy.go, s3uploads.go, s3etags.go; gofakes3 gets the
// same If-Match checks); SQS, DynamoDB and
// SES are the node packages local-aws-sqs, dynalite and aws-ses-v2-local
// that `npm ci` installs under the module root (package.json pins them).
// Every S3 request is counted per bucket on the wire (Env.S3Traffic). If
// SLUICE_TEST_ENDPOINT is set (say http://localhost:4566 for LocalStack),
// every service uses that endpoint and nothing is started.
//
// When the node packages are missing, tests skip with a message saying how to
// install them, except under CI=true, where they fail: a CI run that quietly
// skipped every AWS test would prove nothing.
//
// Typical use, one set of emulators per test binary:
//
//	func TestMain(m *testing.M) { awstest.Main(m, awstest.SQS) }
//
//	func TestX(t *testing.T) {
//		env := awstest.Shared(t)
//		cfg := env.Config(awstest.SQS)
//		...
//	}
package awstest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Service names one emulated AWS service.
type Service string

const (
	S3       Service = "s3"
	SQS      Service = "sqs"
	DynamoDB Service = "dynamodb"
	SES      Service = "ses"
	// S3Copy is an S3 that implements UploadPartCopy (ranged too) and
	// refuses multipart uploads S3 would refuse; slower than S3 (a node
	// process storing files), so only the tests of the copy path use it.
	S3Copy Service = "s3copy"
)

// EndpointEnv names the variable that points every service at one external
// endpoint, such as LocalStack's, instead of starting emulators.
const EndpointEnv = "SLUICE_TEST_ENDPOINT"

// Region is the region every client gets; emulators ignore it, LocalStack
// uses it in ARNs.
const Region = "us-east-1"

// ErrUnavailable is wrapped by Start when the emulators cannot run here (no
// node, or `npm ci` was not run); anything else going wrong is a plain error.
var ErrUnavailable = errors.New("AWS emulators unavailable")

// startTimeout bounds how long one emulator may take to start answering.
const startTimeout = 60 * time.Second

// Env is a set of running emulators, or an external endpoint.
type Env struct {
	endpoints map[Service]string
	external  bool

	s3srv *httptest.Server
	procs []*nodeProc
	// s3copy is the proxy in front of s3rver, which stores under s3dir.
	s3copy  *httptest.Server
	s3dir   string
	traffic Traffic
	// sqsFix corrects local-aws-sqs's queue depths (see sqsCounts).
	sqsFix *httptest.Server
}

// Endpoint returns the base URL of service s. It panics for a service the
// Env was not started with: that is a mistake in the test, not in the code
// under test.
func (e *Env) Endpoint(s Service) string {
	ep, ok := e.endpoints[s]
	if !ok {
		panic(fmt.Sprintf("awstest: %s was not started; pass it to Main, New or Start", s))
	}
	return ep
}

// External reports whether the endpoints belong to an external stack
// (SLUICE_TEST_ENDPOINT) rather than to emulators started here. The
// emulators' known quirks are corrected here, in the harness (see
// sqsCounts), so that no adapter needs to know which one it talks to.
func (e *Env) External() bool { return e.external }

// Config returns an aws.Config for service s: the test region, static
// credentials and the service's endpoint. It is built by hand rather than by
// config.LoadDefaultConfig so that a developer's profile, credentials or
// AWS_ENDPOINT_URL_* variables cannot redirect a test at a real account.
func (e *Env) Config(s Service) aws.Config {
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(e.Endpoint(s)),
	}
}

// Start starts the emulators for services, or, when SLUICE_TEST_ENDPOINT is
// set, checks that the external endpoint answers. The caller must Close the
// Env. An error wrapping ErrUnavailable means the emulators cannot run on
// this machine.
func Start(ctx context.Context, services ...Service) (*Env, error) {
	if len(services) == 0 {
		services = []Service{S3, SQS, DynamoDB, SES}
	}
	if ext := strings.TrimRight(os.Getenv(EndpointEnv), "/"); ext != "" {
		e := &Env{endpoints: map[Service]string{}, external: true}
		for _, s := range services {
			e.endpoints[s] = ext
		}
		if err := waitHTTP(ctx, ext); err != nil {
			return nil, fmt.Errorf("awstest: %s=%s does not answer: %w", EndpointEnv, ext, err)
		}
		return e, nil
	}

	e := &Env{endpoints: map[Service]string{}}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	for _, s := range services {
		if s == S3 || e.endpoints[s] != "" {
			continue
		}
		nodeDir, err := findNodeModules(nodePackages[s])
		if err != nil {
			return nil, err
		}
		var env []string
		if s == S3Copy {
			if e.s3dir, err = os.MkdirTemp("", "awstest-s3rver-"); err != nil {
				return nil, err
			}
			env = append(env, s3rverDirEnv+"="+e.s3dir)
		}
		p, err := startNode(ctx, nodeDir, s, env)
		if err != nil {
			return nil, err
		}
		e.procs = append(e.procs, p)
		e.endpoints[s] = p.endpoint
		if s == S3Copy {
			if e.s3copy, err = s3Rules(p.endpoint, e.s3dir, &e.traffic); err != nil {
				return nil, err
			}
			e.endpoints[s] = e.s3copy.URL
		}
		if s == SQS {
			if e.sqsFix, err = sqsCounts(p.endpoint); err != nil {
				return nil, err
			}
			e.endpoints[s] = e.sqsFix.URL
		}
	}
	for _, s := range services {
		if s == S3 && e.s3srv == nil {
			// gofakes3 runs in this process: no node needed, nothing to
			// wait for once the listener exists.
			db := s3mem.New()
			e.s3srv = httptest.NewServer(e.traffic.Count(gofakesConditions(gofakes3.New(db).Server(), db)))
			e.endpoints[S3] = e.s3srv.URL
		}
	}
	for _, s := range services {
		if err := waitHTTP(ctx, e.endpoints[s]); err != nil {
			return nil, fmt.Errorf("awstest: %s emulator does not answer at %s: %w", s, e.endpoints[s], err)
		}
	}
	ok = true
	return e, nil
}

// Close stops everything Start started. It is safe to call twice.
func (e *Env) Close() error {
	if e.s3srv != nil {
		e.s3srv.Close()
		e.s3srv = nil
	}
	if e.sqsFix != nil {
		e.sqsFix.Close()
		e.sqsFix = nil
	}
	if e.s3copy != nil {
		e.s3copy.Close()
		e.s3copy = nil
	}
	var errs []error
	for _, p := range e.procs {
		errs = append(errs, p.stop())
	}
	e.procs = nil
	if e.s3dir != "" {
		errs = append(errs, os.RemoveAll(e.s3dir))
		e.s3dir = ""
	}
	return errors.Join(errs...)
}

// New starts emulators for one test and stops them when it ends. Where they
// cannot run it skips the test, or fails it under CI=true.
func New(t testing.TB, services ...Service) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*startTimeout)
	defer cancel()
	e, err := Start(ctx, services...)
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Logf("awstest: stopping emulators: %v", err)
		}
	})
	return e
}

var shared struct {
	sync.Mutex
	env *Env
	err error
	set bool
}

// Main is a whole TestMain: it starts the emulators for services once for
// the test binary, runs the tests, stops the emulators and exits. Tests get
// the emulators with Shared.
func Main(m *testing.M, services ...Service) {
	os.Exit(run(m, services))
}

// MainAfter is Main with a check after every test has run: after gets
// m.Run's exit code and returns the process's.
func MainAfter(m *testing.M, after func(code int) int, services ...Service) {
	os.Exit(after(run(m, services)))
}

func run(m *testing.M, services []Service) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*startTimeout)
	env, err := Start(ctx, services...)
	cancel()
	shared.Lock()
	shared.env, shared.err, shared.set = env, err, true
	shared.Unlock()
	if env != nil {
		defer func() {
			if err := env.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "awstest: stopping emulators: %v\n", err)
			}
		}()
	}
	return m.Run()
}

// Shared returns the emulators that Main started. Where they could not start
// it skips the test, or fails it under CI=true or when the failure was not
// for want of an installation.
func Shared(t testing.TB) *Env {
	t.Helper()
	shared.Lock()
	env, err, set := shared.env, shared.err, shared.set
	shared.Unlock()
	if !set {
		t.Fatal("awstest.Shared needs awstest.Main in the package's TestMain")
	}
	if err != nil {
		unavailable(t, err)
	}
	return env
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrUnavailable) && os.Getenv("CI") != "true" {
		t.Skipf("skipping: %v", err)
	}
	t.Fatal(err)
}

// waitHTTP waits until base answers any HTTP request: an emulator that
// answers 400 to a bare GET is up.
func waitHTTP(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// findNodeModules looks for an emulator package in node_modules at the
// module root, found by walking up from the working directory (go test runs
// each package in its own directory), and returns the root.
func findNodeModules(pkg string) (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("%w: node is not installed (it runs the SQS, DynamoDB and SES emulators)", ErrUnavailable)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root := ""
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			root = dir
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("awstest: no go.mod above %s", wd)
		}
		dir = parent
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", pkg, "package.json")); err != nil {
		return "", fmt.Errorf("%w: %s is not installed under %s; run `npm ci` in %s", ErrUnavailable, pkg, filepath.Join(root, "node_modules"), root)
	}
	return root, nil
}

// nodePackages are the npm packages (pinned in package.json) that emulate
// each service.
var nodePackages = map[Service]string{SQS: "local-aws-sqs", DynamoDB: "dynalite", SES: "aws-ses-v2-local", S3Copy: "@20minutes/s3rver"}

// launchers start one emulator on 127.0.0.1 with port 0 and print
// {"port": N} once it listens, so the port is the kernel's choice and no
// other test binary can take it between choosing and binding. Each exits
// when its standard input closes, which happens when the test binary exits
// however it exits, so no emulator outlives its tests.
var launchers = map[Service]string{
	SQS: `require("local-aws-sqs").createSqsServer({port: 0, hostname: "127.0.0.1",
		emulateQueueCreationLifecycle: false}).then(s => ready(s.address().port), fail);`,
	// Tables are ACTIVE at once instead of after half a second.
	DynamoDB: `const d = require("dynalite")({createTableMs: 0, deleteTableMs: 0, updateTableMs: 0});
		d.on("error", fail);
		d.listen(0, "127.0.0.1", () => ready(d.address().port));`,
	SES:    `require("aws-ses-v2-local").default({host: "127.0.0.1", port: 0}).then(s => ready(s.address().port), fail);`,
	S3Copy: s3rverLauncher,
}

const launcherPrelude = `
process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
function ready(port) { process.stdout.write(JSON.stringify({port}) + "\n"); }
function fail(err) { console.error(err); process.exit(1); }
`

type nodeProc struct {
	service  Service
	endpoint string
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	stderr   *tailBuffer
	done     chan struct{}
}

func startNode(ctx context.Context, root string, s Service, env []string) (*nodeProc, error) {
	cmd := exec.Command("node", "-e", launcherPrelude+launchers[s])
	cmd.Dir = root // require() resolves from here, and so finds ./node_modules
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &nodeProc{service: s, cmd: cmd, stdin: stdin, stderr: &tailBuffer{max: 8 << 10}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("awstest: starting the %s emulator: %w", s, err)
	}
	go func() { cmd.Wait(); close(p.done) }()

	portc := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var msg struct {
				Port int `json:"port"`
			}
			if json.Unmarshal(sc.Bytes(), &msg) == nil && msg.Port > 0 {
				portc <- msg.Port
				break
			}
		}
		io.Copy(io.Discard, stdout) // keep the emulator's logging from blocking it
	}()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case port := <-portc:
		p.endpoint = fmt.Sprintf("http://127.0.0.1:%d", port)
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("awstest: the %s emulator exited at start (%v): %s", s, cmd.ProcessState, p.stderr)
	case <-timer.C:
	case <-ctx.Done():
	}
	p.stop()
	return nil, fmt.Errorf("awstest: the %s emulator did not start within %v: %s", s, startTimeout, p.stderr)
}

// stop closes the emulator's standard input, which ends it, and kills it if
// it lingers.
func (p *nodeProc) stop() error {
	p.stdin.Close()
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
	}
	p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("the %s emulator ignored the end of its input and was killed", p.service)
}

// tailBuffer keeps the last max bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// S3Traffic returns what the S3 requests for bucket have moved so far, on
// either S3 endpoint. It is empty for an external endpoint, which this
// process does not see.
func (e *Env) S3Traffic(bucket string) Ops { return e.traffic.Bucket(bucket) }
