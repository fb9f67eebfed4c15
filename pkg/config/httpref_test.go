package config_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
)

func TestHTTPReferenceConfig(t *testing.T) {
	p, err := config.Parse([]byte(`
reference:
  http:
    url: https://api.example.com/records/{key}
    mode: single
    auth: {sigv4: {region: eu-west-1, service: execute-api}}
    rateLimit: 20
    timeout: 3s
`))
	if err != nil {
		t.Fatal(err)
	}
	h := p.Reference.HTTP
	if h == nil || h.Mode != "single" || h.Auth.SigV4.Service != "execute-api" || h.Timeout.Seconds() != 3 || p.Reference.Key != "uuid" {
		t.Fatalf("parsed %+v", h)
	}
	for bad, want := range map[string]string{
		"url: file:///etc/passwd":                                                    "http or https",
		"url: https://a/x\n    mode: single":                                         "{key}",
		"url: https://a/x\n    mode: stream":                                         "batch or single",
		"url: https://{key}.a/x\n    mode: single":                                   "only in the path or the query",
		"url: https://a/x#{key}\n    mode: single":                                   "only in the path or the query",
		"url: https://a/x\n    maxBatch: -1":                                         "negative",
		"url: https://a/x\n    auth: {bearerEnv: T, sigv4: {region: r, service: s}}": "exclusive",
		"url: https://a/x\n    retry: 3":                                             "not found",
	} {
		_, err := config.Parse([]byte("reference:\n  http:\n    " + bad + "\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error saying %q", bad, err, want)
		}
	}
}

// TestHTTPReferenceRetriesAndBreaker: retries: 0 is kept as 0 (not the
// default), unset stays unset, and the breaker's keys are read and range
// checked.
func TestHTTPReferenceRetriesAndBreaker(t *testing.T) {
	p, err := config.Parse([]byte("reference:\n  http:\n    url: https://a/x\n    retries: 0\n    breaker: {failures: 2, openFor: 5s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := p.Reference.HTTP
	if h.Retries == nil || *h.Retries != 0 || h.Breaker.Failures != 2 || h.Breaker.OpenFor.Duration != 5*time.Second {
		t.Fatalf("parsed retries %v, breaker %+v", h.Retries, h.Breaker)
	}
	p, err = config.Parse([]byte("reference:\n  http: {url: https://a/x}\n"))
	if err != nil || p.Reference.HTTP.Retries != nil {
		t.Fatalf("unset retries: %v, %v", p.Reference.HTTP.Retries, err)
	}
	for bad, want := range map[string]string{
		"retries: -1":                 "reference.http.retries -1: must be from 0",
		"retries: 21":                 "reference.http.retries 21",
		"breaker: {failures: -3}":     "reference.http.breaker.failures -3: must be from 1 to 1000",
		"breaker: {failures: 5000}":   "breaker.failures 5000",
		"breaker: {openFor: 1ms}":     "reference.http.breaker.openFor 1ms: must be from 100ms to 1h",
		"breaker: {openFor: 3h}":      "breaker.openFor 3h0m0s",
		"breaker: {trips: 3}":         "field trips not found",
		"breaker: {openFor: forever}": "not a duration",
	} {
		_, err := config.Parse([]byte("reference:\n  http:\n    url: https://a/x\n    " + bad + "\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error saying %q", bad, err, want)
		}
	}
}

// TestHTTPReferencePerFeed: each feed's reference may be its own HTTP API,
// or a dataset; a feed's http keys are decoded over a copy of the top
// level's, never into them; HTTP feeds need no dataset, so a load into one
// is refused with the reason.
func TestHTTPReferencePerFeed(t *testing.T) {
	const yml = `
reference: {key: uuid, append: [a], http: {url: "https://top.example/r", retries: 1}}
feeds:
  - name: prices
    prefix: prices/
    reference: {http: {url: "https://prices.example/r", retries: 0}}
  - name: stock
    prefix: stock/
    reference: {http: {url: "https://stock.example/r"}}
  - name: local
    prefix: local/
    reference: {dataset: parts, http: null}
`
	p, err := config.Parse([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if u := p.Reference.HTTP.URL; u != "https://top.example/r" || *p.Reference.HTTP.Retries != 1 {
		t.Fatalf("a feed changed the top level's reference.http: %s, retries %d", u, *p.Reference.HTTP.Retries)
	}
	want := map[string]string{"prices": "https://prices.example/r", "stock": "https://stock.example/r", "local": ""}
	for name, u := range want {
		fc, err := p.ForFeed(name)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if fc.FromHTTP() {
			got = fc.Reference.HTTP.URL
		}
		if got != u {
			t.Errorf("feed %s enriches from %q, want %q", name, got, u)
		}
	}
	if fc, _ := p.ForFeed("prices"); *fc.Reference.HTTP.Retries != 0 {
		t.Errorf("prices retries %d, want 0", *fc.Reference.HTTP.Retries)
	}
	if fc, _ := p.ForFeed("stock"); *fc.Reference.HTTP.Retries != 1 {
		t.Errorf("stock retries %d, want the top level's 1", *fc.Reference.HTTP.Retries)
	}
	if ds := p.Datasets(); len(ds) != 1 || ds[0] != "parts" {
		t.Errorf("datasets %v, want [parts]: HTTP feeds load none", ds)
	}
	if _, err := p.ForDataset("default"); err == nil || !strings.Contains(err.Error(), "HTTP API") || !strings.Contains(err.Error(), "nothing to load") {
		t.Errorf("loading the default dataset: %v", err)
	}
	// Batch identity: a feed's digest (pipeline.ConfigDigest, over this
	// JSON) covers its own HTTP settings.
	a, _ := p.ForFeed("prices")
	ja, _ := json.Marshal(a)
	for _, change := range []string{"retries: 0}", "retries: 0, breaker: {failures: 9}}", "retries: 0, auth: {bearerEnv: T}}"} {
		q, err := config.Parse([]byte(strings.ReplaceAll(yml, "retries: 0}", change)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := q.ForFeed("prices")
		jb, _ := json.Marshal(b)
		if (string(ja) == string(jb)) != (change == "retries: 0}") {
			t.Errorf("with %s the feed's JSON is %s", change, jb)
		}
	}
}
