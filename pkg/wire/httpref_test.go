package wire_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/httpref"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/wire"
)

// TestHTTPCatalogsPerFeed: each feed with reference.http gets its API's
// catalog, feeds with the same API settings share one (one cache, rate
// limit and breaker per API), a dataset feed gets its dataset, and a feed
// the builder has no HTTP catalog for is an error, never the local data.
func TestHTTPCatalogsPerFeed(t *testing.T) {
	cfg, err := config.Parse([]byte(`
feeds:
  - {name: a, prefix: a/, reference: {http: {url: "https://a.example/r"}}}
  - {name: a2, prefix: a2/, reference: {onMissing: empty, http: {url: "https://a.example/r"}}}
  - {name: b, prefix: b/, reference: {http: {url: "https://b.example/r"}}}
  - {name: local, prefix: l/, reference: {dataset: parts}}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := wire.Local(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.UseHTTPReference(cfg, httpref.Options{}); err != nil {
		t.Fatal(err)
	}
	source := map[string]string{}
	cats := map[string]any{}
	for _, f := range []string{"a", "a2", "b", "local"} {
		fc, err := cfg.ForFeed(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.FeedCatalog(fc)
		if err != nil {
			t.Fatal(err)
		}
		cats[f] = c
		v, err := c.Current(t.Context())
		if err == nil {
			source[f] = v.Source
		}
	}
	if source["a"] != "https://a.example/r" || source["b"] != "https://b.example/r" || source["local"] != "" {
		t.Fatalf("sources %v", source)
	}
	if cats["a"] != cats["a2"] || cats["a"] == cats["b"] {
		t.Fatal("feeds with the same API settings must share one catalog, others not")
	}
	if _, err := p.HTTPCatalog("local"); err == nil || !strings.Contains(err.Error(), "no HTTP reference") {
		t.Fatalf("HTTP catalog of a dataset feed: %v", err)
	}
}

// TestHTTPNullUsesTheDefaultDataset: with reference.http at the top level,
// a feed that sets `http: null` enriches from the default dataset (its
// catalog, and the one wire.Catalogs("default") gives a load), while the
// other feed enriches from the top-level API through its own routing.
func TestHTTPNullUsesTheDefaultDataset(t *testing.T) {
	cfg, err := config.Parse([]byte(`
reference: {key: uuid, append: [a], http: {url: "https://top.example/r"}}
feeds:
  - {name: api, prefix: api/}
  - {name: local, prefix: l/, reference: {http: null}}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := wire.Local(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.UseHTTPReference(cfg, httpref.Options{}); err != nil {
		t.Fatal(err)
	}
	source := func(feed string) string {
		fc, err := cfg.ForFeed(feed)
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.FeedCatalog(fc)
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.Current(t.Context())
		if err != nil && !errors.Is(err, sluice.ErrNotFound) {
			t.Fatal(err)
		}
		return v.Source
	}
	if s := source("local"); s != "" {
		t.Errorf("feed with http: null enriches from %s", s)
	}
	if s := source("api"); s != "https://top.example/r" {
		t.Errorf("feed api enriches from %q, want the top-level API", s)
	}
	def, err := p.Catalogs(config.DefaultDataset)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := def.(*httpref.Catalog); ok {
		t.Fatal("the default dataset's catalog is the top-level API")
	}
	if _, err := cfg.ForDataset(config.DefaultDataset); err != nil {
		t.Fatalf("loading the default dataset for feed local: %v", err)
	}
}
