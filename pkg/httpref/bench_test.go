package httpref_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/httpref"
)

// BenchmarkLookup5msAPI measures rows/s enriched from a batch API that
// takes 5 ms per call, with the default maxBatch (100) and concurrency
// (4), chunks of 1,000 distinct keys (never cached).
func BenchmarkLookup5msAPI(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		var keys []string
		json.NewDecoder(r.Body).Decode(&keys)
		out := make([]map[string]any, len(keys))
		for i, k := range keys {
			out[i] = map[string]any{"id": k, "name": "n" + k, "score": i, "vip": true}
		}
		json.NewEncoder(w).Encode(out)
	}))
	defer srv.Close()
	ref := config.Reference{Key: "id", Append: []string{"name", "score", "vip"}, OnMissing: "empty",
		HTTP: &config.HTTPReference{URL: srv.URL + "/lookup"}}
	c, err := httpref.New(ref, httpref.Options{})
	if err != nil {
		b.Fatal(err)
	}
	v, _ := c.Current(b.Context())
	r, _ := c.Version(b.Context(), v.ID)
	const chunk = 1000
	keys := make([]string, chunk)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for j := range keys {
			keys[j] = fmt.Sprintf("%d-%d", i, j)
		}
		if _, err := r.Lookup(b.Context(), keys); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*chunk)/b.Elapsed().Seconds(), "rows/s")
}
