package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

// awsOnly are metrics only the AWS adapters produce: `sluice serve` cannot
// give them a series, so a panel reading only these may be empty here
// (TestQueriesUseExportedMetrics still proves the names).
var awsOnly = map[string]bool{"sluice_aws_calls_total": true}

// tool finds a Prometheus binary. Without it the test skips, except under
// CI=true, where it fails: CI must install Debian's prometheus package.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := name + " not found: this test needs Debian's prometheus package (apt-get install -y --no-install-recommends prometheus)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestAlertRulesUnit runs promtool's unit tests of the alerts
// (testdata/alerts_test.yml) and checks every rule file.
func TestAlertRulesUnit(t *testing.T) {
	promtool := tool(t, "promtool")
	args := append([]string{"check", "rules"}, ruleFiles(t)...)
	if out, err := exec.CommandContext(t.Context(), promtool, args...).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(t.Context(), promtool, "test", "rules", "alerts_test.yml")
	cmd.Dir = "testdata"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestAgainstPrometheus runs `sluice serve` on three files (two good ones
// with 5% bad rows, one refused whole) plus a poison message, scrapes it
// with a real Prometheus every second while evaluating deploy/'s rules, and
// then sends every dashboard query and every rule expression to it: none
// may fail, every panel query (except AWS-only ones) must return a series
// with a number in it, every recording rule must have recorded, and every
// rule must be loaded and healthy. The alerts the run provokes must be
// active.
func TestAgainstPrometheus(t *testing.T) {
	promBin := tool(t, "prometheus")
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	tmp := t.TempDir()

	// The binary, the data and its configuration.
	bin := filepath.Join(tmp, "sluice")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sluice")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	orders, financials, st, err := gen.WriteFiles(filepath.Join(tmp, "gen"), gen.Options{Rows: 200_000, Seed: 7, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(tmp, "pipeline.yml")
	writeFile(t, cfgFile, "chunkRows: 5000\n") // 40 chunks a file: queues, pools and latencies move
	data := filepath.Join(tmp, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	// A message for a batch that does not exist: the notifier dead-letters
	// it, so the DLQ and dead-letter series exist and the DLQ alert pends.
	db, err := sqlite.Open(filepath.Join(data, "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Queue("notify", sqlite.QueueOptions{}).Send(ctx, sluice.Encode(sluice.BatchReady{Version: sluice.MessageVersion, BatchID: "no-such-batch"})); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// sluice serve.
	sluiceAddr := freeAddr(t)
	serve := start(t, "sluice serve", bin, "serve", "--data", data, "--addr", sluiceAddr, "--reference", financials,
		"--config", cfgFile, "--poll", "200ms", "--scale-period", "1s", "--max-workers", "4")
	waitHTTP(t, ctx, "http://"+sluiceAddr+"/readyz", serve)

	// Prometheus, scraping it every second and evaluating the rules as
	// often.
	promAddr := freeAddr(t)
	promCfg := filepath.Join(tmp, "prometheus.yml")
	writeFile(t, promCfg, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: sluice
    static_configs:
      - targets: [%q]
`, filepath.Join(root, "deploy/prometheus/rules/*.yml"), sluiceAddr))
	prom := start(t, "prometheus", promBin, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(tmp, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	api := &promAPI{base: "http://" + promAddr}
	waitHTTP(t, ctx, api.base+"/-/ready", prom)
	runStart := time.Now()
	api.waitFor(t, ctx, `up{job="sluice"} == 1`, "the first scrape of sluice serve", prom)

	// Three files: two good ones and one whose header lacks every column.
	dropped := map[string]bool{"orders-a.csv": true, "orders-b.csv": true, "broken.csv": true}
	drop := filepath.Join(data, "input")
	copyFile(t, orders, filepath.Join(drop, "orders-a.csv"))
	copyFile(t, orders, filepath.Join(drop, "orders-b.csv"))
	writeFile(t, filepath.Join(drop, "broken.csv"), "a,b\n1,2\n")

	// Until the three batches end.
	led, err := sqlite.Open(filepath.Join(data, "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	var batches []sluice.Batch
	for {
		batches, err = led.Ledger().ListBatches(ctx, sluice.BatchFilter{})
		if err != nil {
			t.Fatal(err)
		}
		ended := 0
		for _, b := range batches {
			if b.State.Terminal() {
				ended++
			}
		}
		if len(batches) == len(dropped) && ended == len(dropped) {
			break
		}
		sleep(t, ctx, 200*time.Millisecond, "the batches to end", serve)
	}
	states := map[string]sluice.State{}
	for _, b := range batches {
		states[b.Name] = b.State
		if b.Name != "broken.csv" && b.RowsRejected < st.Bad {
			t.Errorf("batch %s: %d rows rejected, the generator wrote %d bad ones", b.Name, b.RowsRejected, st.Bad)
		}
	}
	if want := map[string]sluice.State{"orders-a.csv": sluice.StateCompleted, "orders-b.csv": sluice.StateCompleted, "broken.csv": sluice.StateFailed}; !maps.Equal(states, want) {
		t.Fatalf("batches ended %v, want %v", states, want)
	}
	t.Logf("three batches ended %.1fs after Prometheus's first scrape", time.Since(runStart).Seconds())

	// Until Prometheus has scraped the end, and the rules have seen it.
	api.waitFor(t, ctx, `sum(sluice_batches{state="completed"}) == 2 and on() sum(sluice_batches{state="failed"}) == 1`, "the ended batches to be scraped", prom)
	api.waitFor(t, ctx, `sum(sluice_messages_dead_lettered_total{reason="unknown_batch"}) >= 1`, "the poison message's dead-lettering", prom)
	api.waitFor(t, ctx, `sum(sluice:workers:sum) > 0`, "a recorded series", prom)
	// One scrape more after all that, so a series first seen at the end
	// (a rejection rule's) has two samples for rate().
	api.waitFor(t, ctx, fmt.Sprintf(`max(timestamp(up)) > %d`, time.Now().Unix()), "one more scrape", prom)
	end := time.Now()

	// Every dashboard query.
	for _, q := range dashboardQueries(t) {
		if _, err := api.query(ctx, q.expr, end); err != nil {
			t.Errorf("%s: %q at now: %v", q.where, q.expr, err)
			continue
		}
		series, err := api.queryRange(ctx, q.expr, runStart, end)
		if err != nil {
			t.Errorf("%s: %q over the run: %v", q.where, q.expr, err)
			continue
		}
		if !slices.ContainsFunc(metricsIn(q.expr), func(n string) bool { return !awsOnly[n] }) {
			continue // nothing `sluice serve` exports: may be empty
		}
		if !hasNumber(series) {
			t.Errorf("%s: %q returned %d series and no number over the run", q.where, q.expr, len(series))
		}
	}

	// Every rule expression: it evaluates; a recording rule's series exists.
	for _, q := range ruleQueries(t) {
		if _, err := api.query(ctx, q.expr, end); err != nil {
			t.Errorf("%s: %q at now: %v", q.where, q.expr, err)
			continue
		}
		series, err := api.queryRange(ctx, q.expr, runStart, end)
		if err != nil {
			t.Errorf("%s: %q over the run: %v", q.where, q.expr, err)
			continue
		}
		if q.rec == "" {
			continue
		}
		if !hasNumber(series) {
			t.Errorf("%s: the expression returned no number over the run", q.where)
		}
		// The recorded series, given the rule group a moment if the
		// machine is busy.
		if !api.eventually(ctx, q.rec, 15*time.Second) {
			var groups json.RawMessage
			api.get(ctx, "/api/v1/rules", url.Values{"type": {"record"}}, &groups)
			t.Errorf("%s: Prometheus recorded nothing within 15s; its recording groups: %s", q.where, groups)
		}
	}

	// Every rule is loaded, healthy and has been evaluated.
	var rules struct {
		Groups []struct {
			Name  string `json:"name"`
			File  string `json:"file"`
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := api.get(ctx, "/api/v1/rules", nil, &rules); err != nil {
		t.Fatal(err)
	}
	loaded := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			loaded[filepath.Base(g.File)+": "+g.Name+"/"+r.Name] = r.Health
			if r.Health != "ok" {
				t.Errorf("rule %s/%s: health %q, %s", g.Name, r.Name, r.Health, r.LastError)
			}
		}
	}
	for _, q := range ruleQueries(t) {
		if _, ok := loaded[q.where]; !ok {
			t.Errorf("%s: not loaded by Prometheus (it has %v)", q.where, loaded)
		}
	}
	// What the run provoked: a dead-lettered message (for: 5m, so pending)
	// and a failed batch (no for: firing). 5% of rows rejected is under
	// the 20% threshold, and nothing was open for 30 minutes.
	api.waitFor(t, ctx, `ALERTS{alertname="SluiceDeadLetterQueueNotEmpty", alertstate="pending", queue="notify-dlq"}`, "the DLQ alert to pend", prom)
	api.waitFor(t, ctx, `ALERTS{alertname="SluiceBatchesFailing", alertstate="firing"}`, "the failed-batch alert to fire", prom)
	for _, name := range []string{"SluiceRejectionRateHigh", "SluiceBatchStuck", "SluicePipelineStalled", "SluiceBacklogGrowingAtMaxWorkers"} {
		if s, err := api.query(ctx, fmt.Sprintf(`ALERTS{alertname=%q, alertstate="firing"}`, name), time.Now()); err != nil || len(s) > 0 {
			t.Errorf("alert %s fired (%v): %v", name, err, s)
		}
	}
}

// promAPI queries Prometheus's HTTP API.
type promAPI struct{ base string }

type series struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`  // instant: [time, "value"]
	Values [][]any           `json:"values"` // range: [[time, "value"], ...]
}

func (a *promAPI) get(ctx context.Context, path string, q url.Values, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var env struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Warnings  []string        `json:"warnings"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", env.ErrorType, env.Error)
	}
	if len(env.Warnings) > 0 {
		return fmt.Errorf("warnings: %v", env.Warnings)
	}
	return json.Unmarshal(env.Data, v)
}

func (a *promAPI) query(ctx context.Context, expr string, at time.Time) ([]series, error) {
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := a.get(ctx, "/api/v1/query", url.Values{"query": {expr}, "time": {unix(at)}}, &d); err != nil {
		return nil, err
	}
	if d.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", d.ResultType)
	}
	var s []series
	return s, json.Unmarshal(d.Result, &s)
}

func (a *promAPI) queryRange(ctx context.Context, expr string, from, to time.Time) ([]series, error) {
	var d struct {
		Result []series `json:"result"`
	}
	err := a.get(ctx, "/api/v1/query_range", url.Values{"query": {expr}, "start": {unix(from)}, "end": {unix(to)}, "step": {"1"}}, &d)
	return d.Result, err
}

// waitFor polls until expr returns a series.
func (a *promAPI) waitFor(t *testing.T, ctx context.Context, expr, what string, p *proc) {
	t.Helper()
	for {
		s, err := a.query(ctx, expr, time.Now())
		if err != nil && ctx.Err() == nil {
			t.Fatalf("waiting for %s: %q: %v", what, expr, err)
		}
		if len(s) > 0 {
			return
		}
		sleep(t, ctx, 250*time.Millisecond, what, p)
	}
}

// eventually polls until expr has a number at now, for at most d.
func (a *promAPI) eventually(ctx context.Context, expr string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if s, err := a.query(ctx, expr, time.Now()); err == nil && hasNumber(s) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// hasNumber: some series has a sample that is a number (not NaN).
func hasNumber(ss []series) bool {
	for _, s := range ss {
		vals := s.Values
		if s.Value != nil {
			vals = append(vals, s.Value)
		}
		for _, v := range vals {
			if len(v) != 2 {
				continue
			}
			str, _ := v[1].(string)
			if f, err := strconv.ParseFloat(str, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return true
			}
		}
	}
	return false
}

func unix(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64) }

// proc is a child process the test started; it is stopped (SIGTERM, then
// SIGKILL after 10 s) when the test ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func start(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), "SLUICE_LOG_LEVEL=warn")
	p.cmd.WaitDelay = 10 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.out.String())
		}
	})
	return p
}

// sleep waits d, failing the test when ctx ends or p has exited.
func sleep(t *testing.T, ctx context.Context, d time.Duration, what string, p *proc) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("%s exited while waiting for %s: %v\n%s", p.name, what, p.err, p.out.String())
	case <-ctx.Done():
		t.Fatalf("timed out waiting for %s", what)
	case <-time.After(d):
	}
}

func waitHTTP(t *testing.T, ctx context.Context, u string, p *proc) {
	t.Helper()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		sleep(t, ctx, 100*time.Millisecond, u, p)
	}
}

// freeAddr is a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyFile writes a hidden temporary file first and renames it into place,
// so the drop folder never sees half a file.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".part")
	writeFile(t, tmp, string(b))
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}
