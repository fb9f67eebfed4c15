package httpref_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/httpref"
)

// TestConcurrencyIsSharedByChunks: two chunks looked up at once never have
// more than concurrency calls in flight together.
func TestConcurrencyIsSharedByChunks(t *testing.T) {
	a := newAPI(t, 200)
	var inFlight, most atomic.Int64
	a.setScript(func(_ int64, _ http.ResponseWriter, _ *http.Request) bool {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
		return false
	})
	r := open(t, refConfig(a.srv.URL+"/lookup", func(h *config.HTTPReference) { h.Concurrency = 2 }), httpref.Options{})
	var wg sync.WaitGroup
	for c := range 2 {
		wg.Go(func() {
			ks := keys(200)[c*100 : (c+1)*100]
			got, err := r.Lookup(t.Context(), ks)
			if err != nil {
				t.Error(err)
				return
			}
			check(t, got, want(a, ks))
		})
	}
	wg.Wait()
	if most.Load() > 2 || a.calls.Load() != 20 {
		t.Fatalf("%d calls in flight at most (limit 2), %d calls (want 20)", most.Load(), a.calls.Load())
	}
}

// TestRateLimitSpacesCalls: at rateLimit 50/s, 6 calls take at least the 5
// gaps of 20 ms between them.
func TestRateLimitSpacesCalls(t *testing.T) {
	a := newAPI(t, 6)
	r := open(t, refConfig(a.srv.URL+"/records/{key}", func(h *config.HTTPReference) {
		h.Mode, h.RateLimit, h.Concurrency = "single", 50, 6
	}), httpref.Options{})
	start := time.Now()
	if _, err := r.Lookup(t.Context(), keys(6)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("6 calls at 50/s took %s, want at least 100ms", d)
	}
}

// TestCacheExpires: within cacheTTL a key is answered from the cache, after
// it the API is asked again.
func TestCacheExpires(t *testing.T) {
	a := newAPI(t, 5)
	r := open(t, refConfig(a.srv.URL+"/lookup", func(h *config.HTTPReference) { h.CacheTTL.Duration = 200 * time.Millisecond }), httpref.Options{})
	for range 2 {
		if _, err := r.Lookup(t.Context(), keys(5)); err != nil {
			t.Fatal(err)
		}
	}
	if a.calls.Load() != 1 {
		t.Fatalf("%d calls within the TTL, want 1", a.calls.Load())
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.calls.Load() == 1 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if _, err := r.Lookup(t.Context(), keys(5)); err != nil {
			t.Fatal(err)
		}
	}
	if a.calls.Load() != 2 {
		t.Fatalf("the entry never expired: %d calls", a.calls.Load())
	}
}
