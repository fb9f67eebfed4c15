package wire

import (
	"encoding/json"
	"fmt"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/httpref"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// UseHTTPReference builds, for either builder, the HTTP API catalog of
// every feed whose reference is reference.http: the stages then look that
// feed's keys up in its own API, and the other feeds in their datasets.
// Feeds with the same reference settings share one catalog, so its cache,
// rate limit and circuit breaker are per API and process, not per feed.
// The top level's reference.http reaches the stages only through the
// feeds (the default feed when there are none): Catalog stays the default
// dataset's, so a feed with `http: null` enriches from, and loads into,
// that dataset; a load for a feed on an API is refused by
// config.ForDataset with the reason.
func (p *Ports) UseHTTPReference(cfg *config.Pipeline, opts httpref.Options) error {
	byRef := map[string]*httpref.Catalog{}
	build := func(ref config.Reference) (*httpref.Catalog, error) {
		// What httpref.New reads: the key, the appended columns and the
		// API's settings (not the unused dataset name, nor onMissing).
		id, err := json.Marshal([]any{ref.Key, ref.Append, ref.HTTP})
		if err != nil {
			return nil, err
		}
		if c, ok := byRef[string(id)]; ok {
			return c, nil
		}
		c, err := httpref.New(ref, opts)
		if err == nil {
			byRef[string(id)] = c
		}
		return c, err
	}
	for _, f := range cfg.FeedList() {
		if !f.FromHTTP() {
			continue
		}
		c, err := build(f.Reference)
		if err != nil {
			return fmt.Errorf("feed %s: %w", f.Name, err)
		}
		if p.httpRefs == nil {
			p.httpRefs = map[string]sluice.Catalog{}
		}
		p.httpRefs[f.Name] = c
	}
	return nil
}

// HTTPCatalog is the HTTP API catalog UseHTTPReference built for a feed.
func (p *Ports) HTTPCatalog(feed string) (sluice.Catalog, error) {
	if feed == "" {
		feed = config.DefaultFeed
	}
	if c, ok := p.httpRefs[feed]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("feed %s enriches from reference.http, but this runtime built no HTTP reference for it", feed)
}

// FeedCatalog is the catalog the narrowed configuration cfg
// (config.Pipeline.ForFeed) enriches from: its HTTP API or its dataset.
func (p *Ports) FeedCatalog(cfg *config.Pipeline) (sluice.Catalog, error) {
	if cfg.FromHTTP() {
		return p.HTTPCatalog(cfg.Feed)
	}
	return p.Catalogs(cfg.Dataset())
}
