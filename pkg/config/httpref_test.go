package config_test

import (
	"strings"
	"testing"

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

// TestHTTPReferenceOnlyAtTopLevel: a feed with an HTTP reference of its
// own would be enriched from a local dataset (one HTTP catalog serves the
// default dataset), so the configuration is refused.
func TestHTTPReferenceOnlyAtTopLevel(t *testing.T) {
	_, err := config.Parse([]byte(`
reference: {key: uuid, append: [a]}
feeds:
  - name: orders
    prefix: orders/
    reference: {dataset: prices, key: uuid, append: [a], http: {url: "https://api.example/prices"}}
`))
	if err == nil || !strings.Contains(err.Error(), "reference.http may only be set at the top level") {
		t.Fatalf("err = %v", err)
	}
}
