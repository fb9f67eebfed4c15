package config

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultFeed is the feed a configuration without feeds: has, and the
// feed `sluice run` uses without --feed.
const DefaultFeed = "default"

// DefaultDataset is the reference dataset a feed uses when its reference
// names none.
const DefaultDataset = "default"

// ErrUnknownFeed: the configuration has no feed of that name.
var ErrUnknownFeed = errors.New("unknown feed")

// Feed is one named job: the objects under input/<Prefix>, checked and
// written with its own settings. A feed starts from the top-level settings
// and overrides only the keys it sets.
type Feed struct {
	Name   string `json:"name"`
	Prefix string `json:"prefix"`
	Settings

	raw *yaml.Node // the feed as written; resolved over the top level in parse
}

// UnmarshalYAML keeps the node: a feed's keys are decoded over the
// top-level settings once those are known (resolveFeeds).
func (f *Feed) UnmarshalYAML(n *yaml.Node) error {
	f.raw = n
	return nil
}

type feedFields struct {
	Name     string `yaml:"name"`
	Prefix   string `yaml:"prefix"`
	Settings `yaml:",inline"`
}

// resolveFeeds decodes each feed's node over a copy of the top-level
// settings, rejecting unknown keys as the top level does.
func (p *Pipeline) resolveFeeds() error {
	for i := range p.Feeds {
		f := &p.Feeds[i]
		if f.raw == nil {
			continue
		}
		b, err := yaml.Marshal(f.raw)
		if err != nil {
			return fmt.Errorf("feeds[%d]: %w", i, err)
		}
		ff := feedFields{Settings: p.Settings.clone()}
		before, after := feedAuth(f.raw, p.Reference.HTTP) // httpauth.go
		before(&ff.Settings)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&ff); err != nil {
			return fmt.Errorf("feeds[%d] (line %d): %w", i, f.raw.Line, err)
		}
		if err := after(&ff.Settings); err != nil {
			return fmt.Errorf("feeds[%d] %s (line %d): %w", i, ff.Name, f.raw.Line, err)
		}
		*f = Feed{Name: ff.Name, Prefix: ff.Prefix, Settings: ff.Settings}
	}
	return nil
}

// clone copies the settings so that decoding a feed over them never
// changes the top level (slices and schema maps are shared otherwise).
func (s Settings) clone() Settings {
	c := s
	c.Columns = slices.Clone(s.Columns)
	c.Reference.Append = slices.Clone(s.Reference.Append)
	c.Reference.Types = maps.Clone(s.Reference.Types)
	c.Mail.To = slices.Clone(s.Mail.To)
	c.Deliver = slices.Clone(s.Deliver)
	if h := s.Reference.HTTP; h != nil {
		// A feed's http: keys are decoded over this copy, never over the
		// top level's (or another feed's) settings.
		hc := *h
		hc.Fields = slices.Clone(h.Fields)
		if h.Retries != nil {
			r := *h.Retries
			hc.Retries = &r
		}
		if h.Auth.SigV4 != nil {
			v := *h.Auth.SigV4
			hc.Auth.SigV4 = &v
		}
		c.Reference.HTTP = &hc
	}
	return c
}

// FeedList is the configured feeds, or the one default feed (named
// "default", prefix "") when the configuration has no feeds: key.
func (p *Pipeline) FeedList() []Feed {
	if len(p.Feeds) > 0 {
		return p.Feeds
	}
	return []Feed{{Name: DefaultFeed, Prefix: "", Settings: p.Settings}}
}

// Route finds the feed of an object key (the part after input/): the feed
// with the longest prefix that matches. An unclaimed key is an error that
// lists the prefixes, for the failed batch's reason.
func (p *Pipeline) Route(rel string) (string, error) {
	best, bestLen := "", -1
	for _, f := range p.FeedList() {
		if strings.HasPrefix(rel, f.Prefix) && len(f.Prefix) > bestLen {
			best, bestLen = f.Name, len(f.Prefix)
		}
	}
	if bestLen >= 0 {
		return best, nil
	}
	var ps []string
	for _, f := range p.FeedList() {
		ps = append(ps, fmt.Sprintf("%q (%s)", f.Prefix, f.Name))
	}
	return "", fmt.Errorf("no feed claims %q: the configured prefixes under input/ are %s", rel, strings.Join(ps, ", "))
}

// ForFeed is the configuration one feed's batches run with: the top level
// with the feed's settings in place. An empty name is the default feed
// (batches created before feeds existed record none).
func (p *Pipeline) ForFeed(name string) (*Pipeline, error) {
	f, err := p.lookup(name)
	if err != nil {
		return nil, err
	}
	c := *p
	c.Settings = f.Settings
	c.Feed = f.Name
	// Narrowed: the digest a batch records covers its own feed's settings
	// only, so editing another feed does not change it.
	c.Feeds = nil
	return &c, nil
}

// FeedPrefix is the prefix, under input/, of the feed named name ("" is
// the default feed).
func (p *Pipeline) FeedPrefix(name string) (string, error) {
	f, err := p.lookup(name)
	return f.Prefix, err
}

func (p *Pipeline) lookup(name string) (Feed, error) {
	if name == "" {
		name = DefaultFeed
	}
	for _, f := range p.FeedList() {
		if f.Name == name {
			return f, nil
		}
	}
	return Feed{}, fmt.Errorf("no feed named %q in the configuration (feeds: %s): %w", name, strings.Join(p.FeedNames(), ", "), ErrUnknownFeed)
}

// FeedNames lists the feeds' names in configuration order: the values the
// metrics' feed label can take.
func (p *Pipeline) FeedNames() []string {
	var out []string
	for _, f := range p.FeedList() {
		out = append(out, f.Name)
	}
	return out
}

// FromHTTP reports whether the settings look keys up in an HTTP API
// (reference.http) rather than in a loaded dataset.
func (s *Settings) FromHTTP() bool { return s.Enriches() && s.Reference.HTTP != nil }

// Dataset is the reference dataset the settings look up. Settings that
// enrich from an HTTP API look up no dataset; their reference.dataset,
// inherited from the top level, is not used.
func (s *Settings) Dataset() string {
	if s.Reference.Dataset == "" {
		return DefaultDataset
	}
	return s.Reference.Dataset
}

// Datasets lists the reference datasets the feeds that enrich use, each
// once, in configuration order.
func (p *Pipeline) Datasets() []string {
	var out []string
	for _, f := range p.FeedList() {
		if f.Reference.Key != "" && !f.FromHTTP() && !slices.Contains(out, f.Dataset()) {
			out = append(out, f.Dataset())
		}
	}
	return out
}

// names are safe as a key segment, a file name and a metric label.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidName checks a feed or dataset name.
func ValidName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%s name %q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", kind, name)
	}
	return nil
}

// validateFeeds checks names, prefixes and each feed's settings.
func (p *Pipeline) validateFeeds() error {
	var errs []error
	names, prefixes := map[string]bool{}, map[string]string{}
	for i, f := range p.Feeds {
		if err := ValidName("feed", f.Name); err != nil {
			errs = append(errs, fmt.Errorf("feeds[%d]: %w", i, err))
		}
		if names[f.Name] {
			errs = append(errs, fmt.Errorf("feeds: the name %q appears twice", f.Name))
		}
		names[f.Name] = true
		if o, ok := prefixes[f.Prefix]; ok {
			errs = append(errs, fmt.Errorf("feeds: %s and %s both claim the prefix %q", o, f.Name, f.Prefix))
		}
		prefixes[f.Prefix] = f.Name
		if strings.HasPrefix(f.Prefix, "/") || strings.Contains(f.Prefix, "..") {
			errs = append(errs, fmt.Errorf("feeds[%d] %s: prefix %q must be relative to input/ (no leading / or ..)", i, f.Name, f.Prefix))
		}
		if err := f.Settings.validate(); err != nil {
			errs = append(errs, fmt.Errorf("feeds[%d] %s: %w", i, f.Name, err))
		}
	}
	return errors.Join(errs...)
}

// ForDataset is the configuration a reference file of one dataset is
// loaded with: the first feed that names the dataset gives the delimiter,
// the key and the limits, and the append columns are those of every feed
// sharing it, so the load refuses a file any of them could not use.
func (p *Pipeline) ForDataset(name string) (*Pipeline, error) {
	if name == "" {
		name = DefaultDataset
	}
	var out *Pipeline
	for _, f := range p.FeedList() {
		if f.Reference.Key == "" || f.FromHTTP() || f.Dataset() != name {
			continue
		}
		if out == nil {
			c := *p
			c.Settings = f.Settings.clone()
			c.Feed, c.Feeds = f.Name, nil
			out = &c
			continue
		}
		for _, a := range f.Reference.Append {
			if !slices.Contains(out.Reference.Append, a) {
				out.Reference.Append = append(out.Reference.Append, a)
			}
		}
	}
	if out == nil {
		for _, f := range p.FeedList() {
			if f.FromHTTP() && f.Dataset() == name {
				return nil, fmt.Errorf("feed %s enriches from the HTTP API %s (reference.http), not from the dataset %q; there is nothing to load", f.Name, f.Reference.HTTP.URL, name)
			}
		}
		return nil, fmt.Errorf("no feed enriches from the reference dataset %q (datasets in use: %s)", name, strings.Join(p.Datasets(), ", "))
	}
	return out, nil
}

// validateDatasets: feeds that share a dataset look up the same key column.
func (p *Pipeline) validateDatasets() error {
	key := map[string]string{}
	var errs []error
	for _, f := range p.Feeds {
		if f.Reference.Key == "" || f.FromHTTP() {
			continue
		}
		d := f.Dataset()
		if k, ok := key[d]; ok && k != f.Reference.Key {
			errs = append(errs, fmt.Errorf("feeds: %s looks up dataset %q by %q, another feed by %q; feeds sharing a dataset use one key column", f.Name, d, f.Reference.Key, k))
		}
		key[d] = f.Reference.Key
	}
	return errors.Join(errs...)
}

// OverrideMail applies a deployment's mail settings (the services'
// SLUICE_MAIL_FROM, SLUICE_MAIL_TO, SLUICE_LINK_TTL) over the file's. The
// sender is one verified identity and the link lifetime is bounded by the
// signing credentials, so both apply to every feed. Recipients replace the
// top level's and those of the feeds that inherited them; a feed that
// names its own recipients keeps them. Empty values change nothing.
func (p *Pipeline) OverrideMail(from string, to []string, ttl time.Duration) {
	inherited := slices.Clone(p.Mail.To)
	set := func(m *Mail) {
		if from != "" {
			m.From = from
		}
		if ttl > 0 {
			m.LinkTTL.Duration = ttl
		}
	}
	set(&p.Mail)
	for i := range p.Feeds {
		m := &p.Feeds[i].Mail
		set(m)
		if len(to) > 0 && slices.Equal(m.To, inherited) {
			m.To = slices.Clone(to)
		}
	}
	if len(to) > 0 {
		p.Mail.To = slices.Clone(to)
	}
}
