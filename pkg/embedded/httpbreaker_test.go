package embedded_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/consumer"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// TestHTTPReference429BurstCompletes: five 429s in a row (one call's four
// tries, then the next call's first) with the default breaker settings are
// one failed call, not five: the batch completes with the local run's output.
func TestHTTPReference429BurstCompletes(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	local := runFile(t, config.Default(), orders, fin)
	api := newRefAPI(t, fin)
	api.fail = func(n int64, w http.ResponseWriter) bool {
		if n <= 5 {
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return true
		}
		return false
	}
	cfg := httpConfig(api.srv.URL+"/lookup", 250)
	cfg.Reference.HTTP.Concurrency = 1
	cfg.Reference.HTTP.Breaker = config.HTTPBreaker{} // the defaults: 5 failed calls, 30s
	got := runFile(t, cfg, orders, "")
	if got.batch.State != sluice.StateCompleted {
		t.Fatalf("batch %s: %s", got.batch.State, got.batch.Reason)
	}
	if !bytes.Equal(got.output, local.output) || !bytes.Equal(got.errors, local.errors) {
		t.Fatalf("output differs from the local reference's run:\n%s", firstDiff(got.output, local.output))
	}
}

// backoffWindow is how long the consumer's backoff alone keeps a failing
// chunk alive: the delays between its MaxReceive receives.
func backoffWindow() time.Duration {
	var d time.Duration
	for n := 1; n < pipeline.MaxReceive; n++ {
		d += consumer.DefaultBackoff(n)
	}
	return d
}

// TestHTTPReferenceOutageLongerThanBackoffRecovers: the API is down for
// longer than the chunk's receives and backoffs alone last (15 s); because
// a chunk waits out the open breaker without giving back its receive, the
// chunk is still alive when the API comes back, and the batch completes
// with the local run's output.
func TestHTTPReferenceOutageLongerThanBackoffRecovers(t *testing.T) {
	ref := writeFile(t, "ref.csv", faultyRef)
	in := writeFile(t, "in.csv", faulty)
	want := runFile(t, config.Default(), in, ref)
	api := newRefAPI(t, ref)
	outage := backoffWindow() + 2*time.Second
	var up atomic.Int64
	up.Store(time.Now().Add(outage).UnixNano())
	api.fail = func(_ int64, w http.ResponseWriter) bool {
		if time.Now().UnixNano() < up.Load() {
			http.Error(w, "maintenance window", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	cfg := httpConfig(api.srv.URL+"/lookup", 100)
	cfg.Reference.HTTP.Breaker.Failures = 1 // one chunk, one call per try: trip at once
	got := runFile(t, cfg, in, "")
	if got.batch.State != sluice.StateCompleted || !bytes.Equal(got.output, want.output) {
		t.Fatalf("batch %s (%s) after a %s outage; output:\n%s", got.batch.State, got.batch.Reason, outage, firstDiff(got.output, want.output))
	}
}

// TestHTTPReferenceEndlessOutageFailsInBoundedTime: an API that never
// comes back fails the batch naming the API and its last answer within
// MaxReceive × (10 open periods + the call's tries) plus the backoff
// window: here 5 × (10 × 100 ms + ~4 ms) + 15 s ≈ 20 s; the test allows 60 s.
func TestHTTPReferenceEndlessOutageFailsInBoundedTime(t *testing.T) {
	api := newRefAPI(t, writeFile(t, "ref.csv", faultyRef))
	api.fail = func(_ int64, w http.ResponseWriter) bool {
		http.Error(w, "maintenance window", http.StatusServiceUnavailable)
		return true
	}
	cfg := httpConfig(api.srv.URL+"/lookup", 100)
	cfg.Reference.HTTP.Breaker.Failures = 1
	start := time.Now()
	got := runFile(t, cfg, writeFile(t, "in.csv", faulty), "")
	took := time.Since(start)
	if got.batch.State != sluice.StateFailed {
		t.Fatalf("batch %s with the API down for good", got.batch.State)
	}
	for _, s := range []string{api.srv.URL + "/lookup", "HTTP 503", "maintenance window"} {
		if !strings.Contains(got.batch.Reason, s) {
			t.Fatalf("reason %q does not say %q", got.batch.Reason, s)
		}
	}
	if took < backoffWindow() || took > time.Minute {
		t.Fatalf("failed after %s; want between the backoff window %s and a minute", took, backoffWindow())
	}
	t.Logf("an endless outage failed the batch after %s", took.Round(time.Second))
}

// TestHTTPNullFeedEnrichesFromTheDefaultDataset: the top level enriches
// from an HTTP API; a feed with `http: null` loads and enriches from the
// default dataset, which holds other values than the API, and each feed's
// output equals the local run on its own source's data.
func TestHTTPNullFeedEnrichesFromTheDefaultDataset(t *testing.T) {
	in := writeFile(t, "in.csv", faulty)
	refAPI := writeFile(t, "a.csv", faultyRef)
	refLocal := writeFile(t, "l.csv", strings.ReplaceAll(faultyRef, "9.33", "19.99"))
	api := newRefAPI(t, refAPI)
	cfg, err := config.Parse([]byte(`
reference: {http: {url: "` + api.srv.URL + `/r", backoff: 1ms}}
feeds:
  - {name: api, prefix: api/}
  - {name: local, prefix: local/, reference: {http: null}}
`))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := embedded.Open(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	eng.Feed = "local"
	if _, _, err := eng.LoadReference(t.Context(), refLocal, nil); err != nil {
		t.Fatalf("loading the reference of the feed with http: null: %v", err)
	}
	ids := map[string]string{}
	for _, feed := range []string{"api", "local"} {
		eng.Feed = feed
		sub, err := eng.Submit(t.Context(), writeFile(t, feed+".csv", faulty))
		if err != nil {
			t.Fatal(err)
		}
		ids[feed] = sub.BatchID
	}
	done := runUntil(t, eng, ids)
	wantAPI := runFile(t, config.Default(), in, refAPI)
	wantLocal := runFile(t, config.Default(), in, refLocal)
	for feed, want := range map[string]runOut{"api": wantAPI, "local": wantLocal} {
		b := done[feed]
		out, _ := os.ReadFile(eng.Path(b.OutputKey))
		if b.State != sluice.StateCompleted || !bytes.Equal(out, want.output) {
			t.Errorf("feed %s: batch %s (%s), output from the wrong source:\n%s", feed, b.State, b.Reason, firstDiff(out, want.output))
		}
	}
}

// TestCountedChunkIsNotRewritten: the worker crashes right after its chunk
// is counted; the redelivered chunk message finds the chunk counted and is
// acknowledged without asking the API again or rewriting the part, so the
// output holds the answers that were counted even though the API now
// answers other values.
func TestCountedChunkIsNotRewritten(t *testing.T) {
	refA := writeFile(t, "a.csv", faultyRef)
	refB := writeFile(t, "b.csv", strings.ReplaceAll(faultyRef, "9.33", "19.99"))
	in := writeFile(t, "in.csv", faulty)
	wantA := runFile(t, config.Default(), in, refA)
	wantB := runFile(t, config.Default(), in, refB)
	if bytes.Equal(wantA.output, wantB.output) {
		t.Fatal("the two references give the same output; the test could not tell them apart")
	}
	api, apiB := newRefAPI(t, refA), newRefAPI(t, refB)
	cfg := httpConfig(api.srv.URL+"/lookup", 100)
	// As a fresh worker process would: no cached answers from the first try.
	cfg.Reference.HTTP.CacheTTL = config.Duration{Duration: 100 * time.Millisecond} // gone by the retry, 1 s later
	eng, err := embedded.Open(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	var crashed atomic.Bool
	eng.Fault = func(p string) error {
		if p == pipeline.PointWorkAfterCount && !crashed.Swap(true) {
			api.records = apiB.records // from now on the API answers other values
			return errors.New("crash after the count")
		}
		return nil
	}
	got := runOn(t, eng, in, "")
	if !crashed.Load() {
		t.Fatal("the fault point was never reached")
	}
	if got.batch.State != sluice.StateCompleted || !bytes.Equal(got.output, wantA.output) {
		t.Fatalf("batch %s (%s); the output is not the counted one:\n%s", got.batch.State, got.batch.Reason, firstDiff(got.output, wantA.output))
	}
	if n := api.calls.Load(); n != 1 {
		t.Fatalf("%d API calls: the redelivered, already counted chunk was enriched again", n)
	}
}

// TestSingleModeDotKeysAreUnknown: in single mode the keys "", "." and
// "..", which no URL path can carry, are unknown keys (onMissing rejects
// their rows) exactly as with a local reference: the same output and
// error report, byte for byte, and none of them sent.
func TestSingleModeDotKeysAreUnknown(t *testing.T) {
	ref := writeFile(t, "ref.csv", faultyRef)
	in := writeFile(t, "in.csv", faulty+"\n.,Italy,Fruits,Offline,H,4/30/11,Europe,6/9/11\n..,Italy,Fruits,Offline,H,4/30/11,Europe,6/9/11\n,Italy,Fruits,Offline,H,4/30/11,Europe,6/9/11\n")
	loose := func(cfg *config.Pipeline) *config.Pipeline {
		cfg.Columns[0].Schema = map[string]any{"type": "string"} // let the odd keys reach the lookup
		return cfg
	}
	want := runFile(t, loose(config.Default()), in, ref)
	records := newRefAPI(t, ref).records
	var paths []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.EscapedPath())
		mu.Unlock()
		rec, ok := records[strings.TrimPrefix(r.URL.Path, "/records/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(rec)
	}))
	defer srv.Close()
	cfg := loose(httpConfig(srv.URL+"/records/{key}", 0))
	cfg.Reference.HTTP.Mode = "single"
	got := runFile(t, cfg, in, "")
	if got.batch.State != sluice.StateCompleted || !bytes.Equal(got.output, want.output) || !bytes.Equal(got.errors, want.errors) {
		t.Fatalf("batch %s (%s); output:\n%s\nerrors:\n%s", got.batch.State, got.batch.Reason, firstDiff(got.output, want.output), firstDiff(got.errors, want.errors))
	}
	if !bytes.Contains(want.errors, []byte("..,Italy")) {
		t.Fatalf("the local run did not reject the '..' row; the test exercises nothing:\n%s", want.errors)
	}
	for _, p := range paths {
		if p == "/records/" || p == "/records/." || p == "/records/.." || p == "/" {
			t.Errorf("a dot-segment key was sent: %s", p)
		}
	}
}
