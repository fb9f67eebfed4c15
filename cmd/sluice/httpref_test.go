package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

// TestRunFeedOverHTTP: `sluice run --feed` of a feed whose reference is
// its own HTTP API needs no loaded reference (the API is its one
// version), enriches from the API, and refuses --reference for it with
// the reason.
func TestRunFeedOverHTTP(t *testing.T) {
	var calls atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var keys []string
		json.NewDecoder(r.Body).Decode(&keys)
		out := []map[string]string{}
		for _, k := range keys {
			out = append(out, map[string]string{"uuid": k, "unitsSold": "7", "unitPrice": "1.5", "unitCost": "1",
				"totalRevenue": "10.5", "totalCost": "7", "totalProfit": "3.5"})
		}
		json.NewEncoder(w).Encode(out)
	}))
	defer api.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "feeds.yaml")
	os.WriteFile(cfg, []byte("feeds:\n  - {name: prices, prefix: p/, reference: {http: {url: \""+api.URL+"/lookup\"}}}\n  - {name: local, prefix: l/}\n"), 0o644)
	in := filepath.Join(dir, "in.csv")
	os.WriteFile(in, []byte("uuid,Country,Item Type,Sales Channel,Order Priority,Order Date,Region,Ship Date\n"+
		"535113847,Azerbaijan,Snacks,Online,C,10/8/14,Middle East and North Africa,10/23/14\n"), 0o644)
	data := t.TempDir()
	code, out, errs := cli(t, nil, "run", "--data", data, "--config", cfg, "--feed", "prices", "--json", in)
	var res runResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Status != "completed" || res.RowsOut != 1 || calls.Load() != 1 {
		t.Fatalf("run --feed prices: exit %d, %d API calls\n%s%s", code, calls.Load(), out, errs)
	}
	got, _ := os.ReadFile(res.Output)
	if !strings.Contains(string(got), "535113847,Azerbaijan,Snacks,Online,C,10/8/14,Middle East and North Africa,10/23/14,7,1.5,1,10.5,7,3.5") {
		t.Fatalf("output not enriched from the API:\n%s", got)
	}
	code, _, errs = cli(t, nil, "run", "--data", t.TempDir(), "--config", cfg, "--feed", "prices", "--reference", in, in)
	if code == 0 || !strings.Contains(errs, "HTTP API") || !strings.Contains(errs, "nothing to load") {
		t.Fatalf("run --reference for an HTTP feed: exit %d\n%s", code, errs)
	}
}

// TestConsoleWarnsOnlyForDatasets: the console warns that no reference is
// loaded when a feed enriches from the default dataset, not when every
// feed enriches from its HTTP API.
func TestConsoleWarnsOnlyForDatasets(t *testing.T) {
	dir := t.TempDir()
	api := filepath.Join(dir, "api.yaml")
	os.WriteFile(api, []byte("feeds:\n  - {name: prices, prefix: \"\", reference: {http: {url: \"https://prices.example/r\"}}}\n"), 0o644)
	for cfg, warn := range map[string]bool{api: false, "": true} {
		args := []string{"console", "--data", t.TempDir(), "--addr", "127.0.0.1:0"}
		if cfg != "" {
			args = append(args, "--config", cfg)
		}
		p := start(t, nil, args...)
		p.waitOut(t, regexp.MustCompile(`Sluice console on http://`))
		stderr := p.stop(t)
		if strings.Contains(stderr, "uploaded files cannot be processed") != warn {
			t.Errorf("config %q: want warning %v, stderr %q", cfg, warn, stderr)
		}
	}
}
