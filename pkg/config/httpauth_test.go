package config_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
)

// TestFeedAuthNotCarriedToAnotherHost: a feed whose API is on another host
// than the top level's does not inherit the top level's bearer token or
// SigV4 setting: the configuration is refused until the feed states its
// own auth (auth: {} for none); on the same host it is inherited.
func TestFeedAuthNotCarriedToAnotherHost(t *testing.T) {
	const top = `
reference:
  key: uuid
  append: [a]
  http: {url: "https://partner-a.example/r", auth: {bearerEnv: TOKEN_A}}
feeds:
`
	for _, c := range []struct {
		name, feed, wantErr, wantBearer string
	}{
		{"other host, auth inherited", `  - {name: b, prefix: b/, reference: {http: {url: "https://partner-b.example/r"}}}`, "auth is not carried to another host", ""},
		{"other port, auth inherited", `  - {name: b, prefix: b/, reference: {http: {url: "https://partner-a.example:8443/r"}}}`, "auth is not carried to another host", ""},
		{"other host, auth restated", `  - {name: b, prefix: b/, reference: {http: {url: "https://partner-b.example/r", auth: {bearerEnv: TOKEN_B}}}}`, "", "TOKEN_B"},
		{"other host, no auth", `  - {name: b, prefix: b/, reference: {http: {url: "https://partner-b.example/r", auth: {}}}}`, "", ""},
		{"same host, inherited", `  - {name: b, prefix: b/, reference: {http: {url: "https://partner-a.example/other", retries: 1}}}`, "", "TOKEN_A"},
		{"same API, inherited", `  - {name: b, prefix: b/}`, "", "TOKEN_A"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := config.Parse([]byte(top + c.feed + "\n"))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "feeds[0] b") {
					t.Fatalf("want an error naming the feed and saying %q, got %v", c.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fc, err := p.ForFeed("b")
			if err != nil {
				t.Fatal(err)
			}
			if a := fc.Reference.HTTP.Auth; a.BearerEnv != c.wantBearer || a.SigV4 != nil {
				t.Fatalf("feed b's auth %+v, want bearer %q", a, c.wantBearer)
			}
		})
	}
	// A feed's auth replaces the inherited one whole, so bearer over sigv4
	// is not a merge of both.
	p, err := config.Parse([]byte(`
reference: {key: uuid, append: [a], http: {url: "https://a.example/r", auth: {sigv4: {region: eu-west-1, service: execute-api}}}}
feeds:
  - {name: b, prefix: b/, reference: {http: {auth: {bearerEnv: T}}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if fc, _ := p.ForFeed("b"); fc.Reference.HTTP.Auth.SigV4 != nil || fc.Reference.HTTP.Auth.BearerEnv != "T" {
		t.Fatalf("feed auth %+v, want the bearer only", fc.Reference.HTTP.Auth)
	}
	if p.Reference.HTTP.Auth.SigV4 == nil {
		t.Fatal("the feed's auth changed the top level's")
	}
}

// TestFeedDatasetWithInheritedHTTPRefused: a feed that names a dataset
// but inherits reference.http would silently not use it: refused, with
// the way out; with http: null the dataset is used.
func TestFeedDatasetWithInheritedHTTPRefused(t *testing.T) {
	_, err := config.Parse([]byte(`
reference: {key: uuid, append: [a], http: {url: "https://top.example/r"}}
feeds:
  - {name: local, prefix: l/, reference: {dataset: parts}}
`))
	if err == nil || !strings.Contains(err.Error(), `reference.dataset "parts"`) || !strings.Contains(err.Error(), "http: null") {
		t.Fatalf("want the dataset refused with the way out, got %v", err)
	}
	p, err := config.Parse([]byte(`
reference: {key: uuid, append: [a], http: {url: "https://top.example/r"}}
feeds:
  - {name: local, prefix: l/, reference: {dataset: parts, http: null}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if fc, _ := p.ForFeed("local"); fc.FromHTTP() || fc.Dataset() != "parts" {
		t.Fatalf("feed local: FromHTTP %v, dataset %q", fc.FromHTTP(), fc.Dataset())
	}
}

// TestBreakerFailuresZeroMeansDefault: 0 is accepted as unset, and the
// error for a value out of range says so.
func TestBreakerFailuresZeroMeansDefault(t *testing.T) {
	const cfg = "reference:\n  key: id\n  append: [a]\n  http:\n    url: https://a/x\n    breaker: {failures: %s}\n"
	if _, err := config.Parse([]byte(strings.Replace(cfg, "%s", "0", 1))); err != nil {
		t.Fatalf("failures: 0: %v", err)
	}
	_, err := config.Parse([]byte(strings.Replace(cfg, "%s", "1001", 1)))
	if err == nil || !strings.Contains(err.Error(), "from 1 to 1000") || !strings.Contains(err.Error(), "0 or unset: 5") {
		t.Fatalf("failures: 1001: %v", err)
	}
}

// TestSingleURLThatDoesNotParseIsRefused: {key} where the URL cannot
// parse (as a port) is refused, not let through unchecked.
func TestSingleURLThatDoesNotParseIsRefused(t *testing.T) {
	for _, u := range []string{"https://a.example:{key}/x", "https://{key}.example/x"} {
		_, err := config.Parse([]byte("reference:\n  key: id\n  append: [name]\n  http:\n    url: \"" + u + "\"\n    mode: single\n"))
		if err == nil {
			t.Errorf("url %s accepted", u)
		}
	}
}
