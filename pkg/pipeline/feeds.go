package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// forFeed is d narrowed to one feed: that feed's settings, and the catalog
// of the reference dataset it names. Every stage runs a batch through the
// feed the batch recorded, so a change to another feed never touches it.
func (d *Deps) forFeed(feed string) (*Deps, error) {
	cfg, err := d.Config.ForFeed(feed)
	if err != nil {
		return nil, err
	}
	n := *d
	n.Config = cfg
	n.Catalog = nil
	if fr, ok := d.Recorder.(FeedRecorder); ok {
		n.Recorder = fr.ForFeed(cfg.Feed)
	}
	if cfg.Enriches() {
		if n.Catalog, err = d.feedCatalog(cfg); err != nil {
			return nil, err
		}
	}
	return &n, nil
}

// feedCatalog is the catalog a feed enriches from: its own HTTP API when
// its reference is reference.http, its dataset otherwise.
func (d *Deps) feedCatalog(cfg *config.Pipeline) (sluice.Catalog, error) {
	if !cfg.FromHTTP() {
		return d.catalog(cfg.Dataset())
	}
	if d.HTTPCatalog == nil {
		return nil, fmt.Errorf("feed %s enriches from reference.http, but this runtime has no HTTP reference catalogs", cfg.Feed)
	}
	return d.HTTPCatalog(cfg.Feed)
}

// catalog opens a reference dataset's catalog; without Datasets (a
// runtime that knows one dataset) only the default one exists.
func (d *Deps) catalog(dataset string) (sluice.Catalog, error) {
	if d.Datasets != nil {
		return d.Datasets(dataset)
	}
	if dataset != config.DefaultDataset {
		return nil, fmt.Errorf("reference dataset %q: this runtime has only the default dataset", dataset)
	}
	return d.Catalog, nil
}

// batchFeed is forFeed for a batch's stage after the split. A batch whose
// feed the configuration no longer has is a fault of the configuration,
// not of the message: it is failed with the reason, never run with
// another feed's rules.
func (d *Deps) batchFeed(ctx context.Context, b sluice.Batch) (*Deps, error) {
	fd, err := d.forFeed(b.Feed)
	if err == nil {
		return fd, nil
	}
	if errors.Is(err, config.ErrUnknownFeed) {
		if ferr := d.fail(ctx, b, fmt.Sprintf("the batch belongs to feed %q, which the configuration no longer has", b.Feed)); ferr != nil {
			return nil, ferr
		}
		return nil, errBatchFailed
	}
	return nil, err
}

// datasetOf says which reference dataset a key under reference/ loads:
// reference/<dataset>/file.csv names it, reference/file.csv is "default".
func datasetOf(key, prefix string) (string, error) {
	rest := strings.TrimPrefix(key, prefix)
	ds, _, ok := strings.Cut(rest, "/")
	if !ok {
		return config.DefaultDataset, nil
	}
	if err := config.ValidName("reference dataset", ds); err != nil {
		return "", sluice.Permanentf("reference file %s: %v", key, err)
	}
	return ds, nil
}

// InputDir is where a file for feed goes: input/ then the feed's prefix.
// An empty feed is the default one; a configuration whose feeds: list has
// none named "default" then needs a feed named.
func InputDir(cfg *config.Pipeline, feed string) (string, error) {
	prefix, err := cfg.FeedPrefix(feed)
	if err != nil && feed == "" {
		return "", fmt.Errorf("the configuration has no feed named %q; name one with --feed (feeds: %s)", config.DefaultFeed, strings.Join(cfg.FeedNames(), ", "))
	}
	if err != nil {
		return "", err
	}
	return InputPrefix + prefix, nil
}
