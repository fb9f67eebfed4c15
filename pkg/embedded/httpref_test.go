package embedded_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
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
	cfg.Reference.HTTP = &config.HTTPReference{URL: u, MaxBatch: maxBatch, Retries: 3,
		Backoff: config.Duration{Duration: time.Millisecond}}
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
