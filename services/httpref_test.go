package services_test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/testenv"
)

// TestHTTPReferenceThroughFourServices: with reference.http, at the top
// level or as one feed's own, the four service processes on the emulators
// enrich the seed from a bearer-authenticated API in the test process (no
// reference loaded), and the output equals the embedded run's on the local
// reference file.
func TestHTTPReferenceThroughFourServices(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	f, err := os.Open(fin)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	records := map[string]map[string]string{}
	for _, r := range rows[1:] {
		rec := map[string]string{}
		for i, c := range rows[0] {
			rec[c] = r[i]
		}
		records[r[0]] = rec
	}
	var calls, unauthorized atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			unauthorized.Add(1)
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		var keys []string
		json.NewDecoder(r.Body).Decode(&keys)
		out := []map[string]string{}
		for _, k := range keys {
			if rec, ok := records[k]; ok {
				out = append(out, rec)
			}
		}
		json.NewEncoder(w).Encode(out)
	}))
	defer api.Close()

	const chunkRows = 4000
	httpRef := fmt.Sprintf("{http: {url: %s/lookup, maxBatch: 500, auth: {bearerEnv: PARTNER_TOKEN}}}", api.URL)
	wantOut, wantErrs, _ := embeddedOutput(t, chunkRows, orders, fin)
	// The API as the top level's reference, and as one feed's own (the
	// others' dataset has no version loaded: a batch enriched from it
	// would fail).
	for name, cfg := range map[string]string{
		"top level": fmt.Sprintf("chunkRows: %d\nreference: %s\n", chunkRows, httpRef),
		"per feed": fmt.Sprintf("chunkRows: %d\nfeeds:\n  - {name: partner, prefix: \"\", reference: %s}\n  - {name: local, prefix: local/}\n",
			chunkRows, httpRef),
	} {
		t.Run(name, func(t *testing.T) {
			calls.Store(0)
			s := newStack(t, chunkRows)
			os.WriteFile(s.cfgFile, []byte(cfg), 0o644)
			s.startAll("PARTNER_TOKEN=t0ken")
			s.send("ingest", s.upload(orders, "testfile.csv"))
			b := s.waitBatch("input/testfile.csv", 2*time.Minute)
			checkBatch(t, s, b, wantOut, wantErrs, 0)
			if unauthorized.Load() != 0 {
				t.Fatalf("%d calls without the bearer token", unauthorized.Load())
			}
			if n := calls.Load(); n < 1 || n > 20 { // ceil(10000/500), no failures scripted
				t.Fatalf("%d calls for 10,000 keys at maxBatch 500", n)
			}
		})
	}
}
