package embedded_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// refAPI serves a reference CSV as a batch lookup API (POST a JSON list of
// keys, get the records back) with a scripted failure before some calls.
type refAPI struct {
	records map[string]map[string]string
	calls   atomic.Int64
	fail    func(n int64, w http.ResponseWriter) bool
	srv     *httptest.Server
}

func newRefAPI(t *testing.T, refCSV string) *refAPI {
	t.Helper()
	f, err := os.Open(refCSV)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	a := &refAPI{records: map[string]map[string]string{}}
	for _, r := range rows[1:] {
		rec := map[string]string{}
		for i, c := range rows[0] {
			rec[c] = r[i]
		}
		a.records[r[0]] = rec
	}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := a.calls.Add(1)
		if a.fail != nil && a.fail(n, w) {
			return
		}
		var keys []string
		if err := json.NewDecoder(r.Body).Decode(&keys); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out := []map[string]string{}
		for _, k := range keys {
			if rec, ok := a.records[k]; ok {
				out = append(out, rec)
			}
		}
		json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func httpConfig(u string, maxBatch int) *config.Pipeline {
	cfg := config.Default()
	cfg.Reference.HTTP = &config.HTTPReference{URL: u, MaxBatch: maxBatch, Retries: new(3),
		Backoff: config.Duration{Duration: time.Millisecond},
		// Short, so a dead API fails a test's batch within seconds.
		Breaker: config.HTTPBreaker{OpenFor: config.Duration{Duration: 100 * time.Millisecond}}}
	return cfg
}

// TestHTTPReferenceMatchesLocal: the seed sample enriched from an HTTP API
// holding the reference's rows gives the same output, byte for byte, as
// the run on the loaded reference file, through a 429 burst and 5xx
// answers, in no more calls than ceil(keys/maxBatch) plus the retries.
func TestHTTPReferenceMatchesLocal(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	local := runFile(t, config.Default(), orders, fin)
	api := newRefAPI(t, fin)
	var failed atomic.Int64
	api.fail = func(n int64, w http.ResponseWriter) bool {
		switch {
		case n <= 3:
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case n == 10 || n == 20:
			http.Error(w, "upstream timeout", http.StatusGatewayTimeout)
		default:
			return false
		}
		failed.Add(1)
		return true
	}
	const maxBatch = 250
	got := runFile(t, httpConfig(api.srv.URL+"/lookup", maxBatch), orders, "")
	if got.batch.State != sluice.StateCompleted {
		t.Fatalf("batch %s: %s", got.batch.State, got.batch.Reason)
	}
	if !bytes.Equal(got.output, local.output) || !bytes.Equal(got.errors, local.errors) {
		t.Fatalf("output differs from the local reference's run:\n%s", firstDiff(got.output, local.output))
	}
	keys := 10000 // the seed's distinct uuids
	if n, most := api.calls.Load(), int64((keys+maxBatch-1)/maxBatch)+failed.Load(); n > most || failed.Load() != 5 {
		t.Fatalf("%d calls, %d failed; at most ceil(%d/%d) + retries = %d", n, failed.Load(), keys, maxBatch, most)
	}
}

// TestHTTPReferenceOutageFailsTheBatch: an API that stays down fails the
// batch, naming the API and its last answer; it never completes with rows
// left un-enriched.
func TestHTTPReferenceOutageFailsTheBatch(t *testing.T) {
	orders, _ := testenv.SeedSample(t)
	api := newRefAPI(t, writeFile(t, "ref.csv", faultyRef))
	api.fail = func(_ int64, w http.ResponseWriter) bool {
		http.Error(w, "maintenance window", http.StatusServiceUnavailable)
		return true
	}
	got := runFile(t, httpConfig(api.srv.URL+"/lookup", 100), orders, "")
	if got.batch.State != sluice.StateFailed {
		t.Fatalf("batch %s with the API down", got.batch.State)
	}
	for _, s := range []string{api.srv.URL + "/lookup", "HTTP 503", "maintenance window"} {
		if !strings.Contains(got.batch.Reason, s) {
			t.Fatalf("reason %q does not say %q", got.batch.Reason, s)
		}
	}
}

// TestHTTPReferenceSchemaDriftFailsTheBatch: records without a configured
// field fail the batch at once instead of appending empty values.
func TestHTTPReferenceSchemaDriftFailsTheBatch(t *testing.T) {
	api := newRefAPI(t, writeFile(t, "ref.csv", faultyRef))
	for _, rec := range api.records {
		delete(rec, "unitCost")
	}
	got := runFile(t, httpConfig(api.srv.URL+"/lookup", 100), writeFile(t, "in.csv", faulty), "")
	if got.batch.State != sluice.StateFailed || !strings.Contains(got.batch.Reason, `"unitCost" is missing`) {
		t.Fatalf("batch %s: %q", got.batch.State, got.batch.Reason)
	}
}

// TestHTTPReferencePerFeed: in one engine and one run, two feeds enrich
// from two different HTTP APIs (holding different values) and a third from
// a loaded dataset; each batch's output equals the default pipeline's run
// on a reference file holding its own source's data, and each API is
// called for its own feed only, within ceil(keys/maxBatch) calls.
func TestHTTPReferencePerFeed(t *testing.T) {
	in := writeFile(t, "in.csv", faulty)
	refA := writeFile(t, "a.csv", faultyRef)
	refB := writeFile(t, "b.csv", strings.ReplaceAll(faultyRef, "9.33", "19.99")) // another API, other prices
	apiA, apiB := newRefAPI(t, refA), newRefAPI(t, refB)
	cfg, err := config.Parse([]byte(`
feeds:
  - name: alpha
    prefix: alpha/
    reference: {http: {url: "` + apiA.srv.URL + `/a", maxBatch: 2, backoff: 1ms}}
  - name: beta
    prefix: beta/
    reference: {http: {url: "` + apiB.srv.URL + `/b", maxBatch: 3, backoff: 1ms}}
  - name: local
    prefix: local/
    reference: {dataset: financials}
`))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := embedded.Open(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, _, err := eng.LoadDataset(t.Context(), "financials", refA, nil); err != nil {
		t.Fatal(err)
	}
	eng.Feed = "alpha"
	if _, _, err := eng.LoadReference(t.Context(), refA, nil); err == nil || !strings.Contains(err.Error(), "nothing to load") {
		t.Fatalf("loading a reference file for a feed enriched over HTTP: %v", err)
	}
	ids := map[string]string{}
	for _, feed := range []string{"alpha", "beta", "local"} {
		eng.Feed = feed
		sub, err := eng.Submit(t.Context(), writeFile(t, feed+".csv", faulty))
		if err != nil {
			t.Fatal(err)
		}
		ids[feed] = sub.BatchID
	}
	done := runUntil(t, eng, ids)
	wantA := runFile(t, config.Default(), in, refA)
	wantB := runFile(t, config.Default(), in, refB)
	if bytes.Equal(wantA.output, wantB.output) {
		t.Fatal("the two APIs' data give the same output; the test could not tell them apart")
	}
	for feed, want := range map[string]runOut{"alpha": wantA, "beta": wantB, "local": wantA} {
		b := done[feed]
		out, _ := os.ReadFile(eng.Path(b.OutputKey))
		if b.State != sluice.StateCompleted || !bytes.Equal(out, want.output) {
			t.Errorf("feed %s: batch %s (%s), output from the wrong source:\n%s", feed, b.State, b.Reason, firstDiff(out, want.output))
		}
	}
	keys := int64(5) // faulty's distinct valid uuids
	for name, c := range map[string]struct {
		api      *refAPI
		maxBatch int64
	}{"alpha": {apiA, 2}, "beta": {apiB, 3}} {
		if n := c.api.calls.Load(); n < 1 || n > (keys+c.maxBatch-1)/c.maxBatch {
			t.Errorf("feed %s's API got %d calls; want 1 to ceil(%d/%d)", name, n, keys, c.maxBatch)
		}
	}
	if done["alpha"].RefVersion == done["beta"].RefVersion || done["alpha"].ConfigDigest == done["beta"].ConfigDigest {
		t.Errorf("two APIs, one identity: versions %s/%s, digests %s/%s", done["alpha"].RefVersion, done["beta"].RefVersion, done["alpha"].ConfigDigest, done["beta"].ConfigDigest)
	}
}

// TestHTTPReferenceRetriesZero: with retries: 0 one 503 fails the chunk's
// try at once (no retry within the call); the chunk's queue tries it again
// and the batch completes, in exactly one call more than without the 503.
func TestHTTPReferenceRetriesZero(t *testing.T) {
	ref := writeFile(t, "ref.csv", faultyRef)
	in := writeFile(t, "in.csv", faulty)
	want := runFile(t, config.Default(), in, ref)
	api := newRefAPI(t, ref)
	api.fail = func(n int64, w http.ResponseWriter) bool {
		if n == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	cfg := httpConfig(api.srv.URL+"/lookup", 100)
	cfg.Reference.HTTP.Retries = new(0)
	var logs syncBuffer
	eng, err := embedded.Open(t.TempDir(), cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	got := runOn(t, eng, in, "")
	if got.batch.State != sluice.StateCompleted || !bytes.Equal(got.output, want.output) {
		t.Fatalf("batch %s (%s); output:\n%s", got.batch.State, got.batch.Reason, firstDiff(got.output, want.output))
	}
	if n := api.calls.Load(); n != 2 {
		t.Fatalf("%d calls: want 1 failed try (no retry in the call) + 1 on the chunk's second try", n)
	}
	// The chunk's first try failed on the 503 (with retries 3 the call
	// itself would have retried, and the try succeeded).
	if l := logs.String(); !strings.Contains(l, "handler failed; will retry") || !strings.Contains(l, "after 1 tries") {
		t.Fatalf("no failed chunk try after one call in the logs:\n%s", l)
	}
}
