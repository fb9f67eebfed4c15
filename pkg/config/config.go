// Package config reads the pipeline configuration: the delimiter, the chunk
// size, the per-column rules (JSON Schema), the reference lookup, the mail
// settings and the limits. The built-in default reproduces the seed sample's
// job exactly; a YAML file overrides any part of it.
package config

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/pkg/sluice"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML is the built-in configuration, as a file a user can start from.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Pipeline is the whole configuration. Its top-level Settings are what a
// feed starts from; Feeds (feeds.go) route objects to per-feed settings.
type Pipeline struct {
	Settings `yaml:",inline"`
	// Feeds are the named jobs; empty means one feed, "default", prefix "".
	// Use FeedList, Route and ForFeed rather than reading it.
	Feeds []Feed `yaml:"feeds,omitempty" json:"feeds,omitempty"`
	// Feed names the feed this configuration was narrowed to by ForFeed.
	Feed string `yaml:"-" json:"-"`
	// CopyChunks writes each chunk to <batch>/to_process/ as the seed sample
	// did, instead of handing workers byte ranges of the archived input.
	// Off by default; omitted from the JSON so the config digest of
	// configurations without it does not change.
	CopyChunks bool `yaml:"copyChunks,omitempty" json:"copyChunks,omitempty"`
	// ScanSplit: a huge input is scanned by several split tasks, one byte
	// range each (pkg/pipeline/scansplit.go). Omitted from the JSON while
	// unset, so the config digest of configurations without it stays.
	ScanSplit ScanSplit `yaml:"scanSplit,omitempty" json:"scanSplit,omitzero"`
	// FormulaGuard prefixes cells a spreadsheet would run as formulas.
	FormulaGuard FormulaGuard `yaml:"formulaGuard" json:"formulaGuard"`
	// Retention says when a batch's files may be removed (retention.go).
	Retention Retention `yaml:"retention" json:"retention"`
}

// Settings are the keys a feed can set: what one job's files look like,
// how they are checked and enriched, and who hears about them.
type Settings struct {
	Delimiter string    `yaml:"delimiter" json:"delimiter"`
	ChunkRows int       `yaml:"chunkRows" json:"chunkRows"`
	Columns   []Column  `yaml:"columns" json:"columns"`
	Reference Reference `yaml:"reference" json:"reference"`
	Mail      Mail      `yaml:"mail" json:"mail"`
	Limits    Limits    `yaml:"limits" json:"limits"`
	Output    Output    `yaml:"output,omitempty" json:"output,omitzero"`
	Input     Input     `yaml:"input,omitempty" json:"input,omitzero"`
	// Deliver lists the sinks a finished batch is delivered to besides
	// the email (deliver.go). Omitted from the JSON when empty, so the
	// config digest of configurations without it does not change.
	Deliver []Sink `yaml:"deliver,omitempty" json:"deliver,omitempty"`
}

// FormulaGuard says where cells starting with =, +, -, @, tab or CR get a
// leading ' (OWASP's advice against CSV injection).
type FormulaGuard struct {
	Output      bool `yaml:"output" json:"output"`           // the merged output (off: it would change negative numbers)
	ErrorReport bool `yaml:"errorReport" json:"errorReport"` // the error report of untrusted rows (on)
}

// Column is one column's rule.
type Column struct {
	Name string `yaml:"name" json:"name"`
	// Schema is a JSON Schema for the value, written in YAML or JSON.
	Schema map[string]any `yaml:"schema" json:"schema"`
}

// Reference says how rows are enriched.
type Reference struct {
	// Dataset names the reference dataset looked up ("default" if empty);
	// several feeds may share one.
	Dataset   string   `yaml:"dataset,omitempty" json:"dataset,omitempty"`
	Key       string   `yaml:"key" json:"key"`
	Append    []string `yaml:"append" json:"append"`
	OnMissing string   `yaml:"onMissing" json:"onMissing"`
	// HTTP, when set, looks keys up in an HTTP API instead of a loaded
	// reference dataset (pkg/httpref).
	HTTP *HTTPReference `yaml:"http,omitempty" json:"http,omitempty"`
	// Types gives appended columns a JSON Schema type (integer, number)
	// for typed outputs such as Parquet; unnamed ones are strings.
	Types map[string]string `yaml:"types,omitempty" json:"types,omitempty"`
}

// HTTPReference says how to ask an HTTP API for reference records. The URL
// comes only from here, never from a file's contents.
type HTTPReference struct {
	// URL is the endpoint. In single mode it holds {key}, replaced by the
	// path-escaped key; in batch mode it is POSTed a JSON list of keys.
	URL  string `yaml:"url" json:"url"`
	Mode string `yaml:"mode" json:"mode"` // batch (default) or single
	// KeyField names the key in the records a batch call returns
	// (default: reference.key).
	KeyField string `yaml:"keyField,omitempty" json:"keyField,omitempty"`
	// Fields are the JSON fields kept, in order (default: reference.append).
	Fields []string `yaml:"fields,omitempty" json:"fields,omitempty"`
	Auth   HTTPAuth `yaml:"auth" json:"auth"`
	// MaxBatch bounds the keys of one batch call (default 100).
	MaxBatch    int      `yaml:"maxBatch" json:"maxBatch"`
	Concurrency int      `yaml:"concurrency" json:"concurrency"` // calls in flight per worker (default 4)
	RateLimit   float64  `yaml:"rateLimit" json:"rateLimit"`     // calls per second per worker; 0: unlimited
	Timeout     Duration `yaml:"timeout" json:"timeout"`         // per call (default 10s)
	// Retries are the extra tries of one call on 429, 5xx and timeouts
	// (unset: 3). A pointer, because 0 is a real choice: no retry in the
	// call, the chunk's queue retries it later.
	Retries   *int     `yaml:"retries,omitempty" json:"retries,omitempty"`
	Backoff   Duration `yaml:"backoff" json:"backoff"`     // first retry's wait, doubled each time, with jitter (default 200ms)
	CacheTTL  Duration `yaml:"cacheTTL" json:"cacheTTL"`   // how long an answer is reused (default 5m; 0s: use the default)
	CacheSize int      `yaml:"cacheSize" json:"cacheSize"` // entries kept (default 100000)
	// Breaker pauses calls while the API keeps failing.
	Breaker HTTPBreaker `yaml:"breaker,omitempty" json:"breaker,omitzero"`
}

// HTTPBreaker is the circuit breaker's settings; zero values take the
// defaults.
type HTTPBreaker struct {
	// Failures is how many calls in a row (each after its retries) must
	// fail to open the breaker (default 5, at most 1000).
	Failures int `yaml:"failures,omitempty" json:"failures,omitempty"`
	// OpenFor is how long it stays open before one call may try the API
	// again (default 30s, from 100ms to 1h).
	OpenFor Duration `yaml:"openFor,omitempty" json:"openFor,omitzero"`
}

// HTTPAuth authenticates the calls: a bearer token read from an
// environment variable, or SigV4 (API Gateway IAM auth).
type HTTPAuth struct {
	BearerEnv string `yaml:"bearerEnv,omitempty" json:"bearerEnv,omitempty"`
	SigV4     *SigV4 `yaml:"sigv4,omitempty" json:"sigv4,omitempty"`
}

// SigV4 names what the requests are signed for.
type SigV4 struct {
	Region  string `yaml:"region" json:"region"`
	Service string `yaml:"service" json:"service"` // execute-api for API Gateway
}

// Mail says who hears about a batch.
type Mail struct {
	From    string   `yaml:"from" json:"from"`
	To      []string `yaml:"to" json:"to"`
	LinkTTL Duration `yaml:"linkTTL" json:"linkTTL"`
}

// Limits bound what one file may cost.
type Limits struct {
	MaxFileBytes int64 `yaml:"maxFileBytes" json:"maxFileBytes"`
	MaxLineBytes int   `yaml:"maxLineBytes" json:"maxLineBytes"`
	MaxColumns   int   `yaml:"maxColumns" json:"maxColumns"`
	// MaxRejectRate, when set, fails a batch that rejects more than this
	// fraction of its rows (0.5: half): a file that is mostly wrong is
	// not a success, even though each rejected row is accounted for.
	MaxRejectRate *float64 `yaml:"maxRejectRate,omitempty" json:"maxRejectRate,omitempty"`
}

// Duration reads "90s", "1h" and the like.
type Duration struct{ time.Duration }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 90s or 1h", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Default returns the built-in configuration.
func Default() *Pipeline {
	p, err := parse(defaultYAML, nil)
	if err != nil {
		panic("config: the built-in default is broken: " + err.Error())
	}
	return p
}

// Load reads a configuration file over the default: keys the file sets
// replace the default's, the rest stay. An empty path gives the default.
func Load(path string) (*Pipeline, error) { return LoadFor(path, "local") }

// AWSChunkRows is chunkRows on the AWS backend where the configuration
// does not set it. The merge on S3 assembles the output from the chunks'
// parts with UploadPartCopy, which needs parts of at least 5 MiB (all but
// the last); 10,000 rows of the default columns make ~1.2 MB parts, which
// would all be uploaded again. 100,000 rows make ~11 MB parts: above the
// minimum even with half the rows rejected or narrower rows, and a tenth of
// the chunks to count and queue (docs/capacity.md). Locally the merge
// shares or copies file ranges whatever their size, and smaller chunks
// spread a file over the cores sooner, so the built-in 10,000 stays.
const AWSChunkRows = 100_000

// LoadFor is Load with the defaults of a backend ("aws" or "local"): on
// "aws", chunkRows is AWSChunkRows unless the file sets it (top level or
// per feed).
func LoadFor(path, backend string) (*Pipeline, error) {
	base := Default()
	if backend == "aws" {
		base.ChunkRows = AWSChunkRows
	}
	if path == "" {
		return base, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	p, err := parse(b, base)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return p, nil
}

// Parse reads a configuration from YAML over the default.
func Parse(b []byte) (*Pipeline, error) { return parse(b, Default()) }

func parse(b []byte, base *Pipeline) (*Pipeline, error) {
	p := &Pipeline{}
	if base != nil {
		*p = *base
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(p); err != nil && !errors.Is(err, io.EOF) { // an empty file means all defaults
		return nil, err
	}
	if err := p.resolveFeeds(); err != nil {
		return nil, err
	}
	return p, p.Validate()
}

// Validate checks what the YAML decoder cannot: the top-level settings
// (every feed starts from them) and each feed.
func (p *Pipeline) Validate() error {
	return errors.Join(p.Settings.validate(), p.validateFeeds(), p.validateDatasets(), p.validateScanSplit())
}

// ScanSplit says when an input is split by several tasks, each scanning one
// byte range with a ranged read, rather than by one stream.
type ScanSplit struct {
	// MinBytes is the input size from which the split fans out. Unset, it
	// is DefaultScanSplitBytes, and only where the input is not a local
	// file (a local file is cut on every core by one process, which is
	// quicker than messages between tasks); set, it applies everywhere.
	MinBytes int64 `yaml:"minBytes,omitempty" json:"minBytes,omitempty"`
	// RangeBytes is one task's range (unset: DefaultScanRangeBytes). A task
	// holds its range in memory.
	RangeBytes int64 `yaml:"rangeBytes,omitempty" json:"rangeBytes,omitempty"`
}

// The scan split's defaults.
const (
	DefaultScanSplitBytes = 1 << 30
	DefaultScanRangeBytes = 64 << 20
	// MinScanRangeBytes is the smallest range: below it a range's fixed
	// costs (a message, a ranged read, a summary object, a ledger count)
	// outweigh its scan. sluice.MaxScanRanges is the bound that matters
	// for big files.
	MinScanRangeBytes = 64 << 10
)

// Threshold is the size from which the split fans out, and whether it was
// set (and so applies to local files too).
func (s ScanSplit) Threshold() (int64, bool) {
	if s.MinBytes > 0 {
		return s.MinBytes, true
	}
	return DefaultScanSplitBytes, false
}

// Range is one scan task's range in bytes.
func (s ScanSplit) Range() int64 {
	if s.RangeBytes > 0 {
		return s.RangeBytes
	}
	return DefaultScanRangeBytes
}

// validateScanSplit checks the scan split's settings, and that the
// largest file a split may fan out (limits.maxFileBytes, the top level's
// and each feed's) has no more than sluice.MaxScanRanges ranges.
func (p *Pipeline) validateScanSplit() error {
	s := p.ScanSplit
	if s.MinBytes < 0 {
		return fmt.Errorf("scanSplit.minBytes %d: must be positive (or unset: 1 GiB)", s.MinBytes)
	}
	if s.RangeBytes != 0 && (s.RangeBytes < MinScanRangeBytes || s.RangeBytes > 1<<30) {
		return fmt.Errorf("scanSplit.rangeBytes %d: must be from %d (64 KiB) to 1 GiB (or unset: 64 MiB); a task holds its range in memory", s.RangeBytes, MinScanRangeBytes)
	}
	var errs []error
	ranges := func(where string, maxFileBytes int64) {
		if n := (maxFileBytes + s.Range() - 1) / s.Range(); n > sluice.MaxScanRanges {
			errs = append(errs, fmt.Errorf("%slimits.maxFileBytes %d / scanSplit.rangeBytes %d: %d ranges, over the %d a scan split may have; raise scanSplit.rangeBytes or lower limits.maxFileBytes",
				where, maxFileBytes, s.Range(), n, sluice.MaxScanRanges))
		}
	}
	ranges("", p.Limits.MaxFileBytes)
	for _, f := range p.Feeds {
		if f.Limits.MaxFileBytes != p.Limits.MaxFileBytes {
			ranges("feeds."+f.Name+": ", f.Limits.MaxFileBytes)
		}
	}
	return errors.Join(errs...)
}

func (p *Settings) validate() error {
	var errs []error
	if len(p.Delimiter) != 1 || p.Delimiter == "\"" || p.Delimiter == "\n" || p.Delimiter == "\r" {
		errs = append(errs, fmt.Errorf("delimiter %q: must be one byte, not a quote or line break", p.Delimiter))
	}
	if p.ChunkRows < 1 {
		errs = append(errs, fmt.Errorf("chunkRows %d: must be at least 1", p.ChunkRows))
	}
	seen := map[string]bool{}
	for i, c := range p.Columns {
		if c.Name == "" {
			errs = append(errs, fmt.Errorf("columns[%d]: no name", i))
		}
		if seen[c.Name] {
			errs = append(errs, fmt.Errorf("columns: %q appears twice", c.Name))
		}
		seen[c.Name] = true
	}
	switch p.Reference.OnMissing {
	case "reject", "empty":
	default:
		errs = append(errs, fmt.Errorf("reference.onMissing %q: must be reject or empty", p.Reference.OnMissing))
	}
	if p.Reference.Key == "" && len(p.Reference.Append) > 0 {
		errs = append(errs, errors.New("reference.append is set but reference.key is not"))
	}
	if h := p.Reference.HTTP; h != nil {
		errs = append(errs, h.validate(p.Reference.Key)...)
	}
	if p.Limits.MaxLineBytes < 64 {
		errs = append(errs, fmt.Errorf("limits.maxLineBytes %d: must be at least 64", p.Limits.MaxLineBytes))
	}
	if p.Limits.MaxColumns < 1 {
		errs = append(errs, fmt.Errorf("limits.maxColumns %d: must be at least 1", p.Limits.MaxColumns))
	}
	if p.Limits.MaxFileBytes < 1 {
		errs = append(errs, fmt.Errorf("limits.maxFileBytes %d: must be at least 1", p.Limits.MaxFileBytes))
	}
	if r := p.Limits.MaxRejectRate; r != nil && !(*r >= 0 && *r <= 1) {
		errs = append(errs, fmt.Errorf("limits.maxRejectRate %v: must be a fraction from 0 to 1 (0.5 for 50%%)", *r))
	}
	errs = append(errs, p.validateFormats()...)
	errs = append(errs, validateDeliver(p.Deliver)...)
	if p.Mail.LinkTTL.Duration <= 0 {
		errs = append(errs, errors.New("mail.linkTTL must be positive"))
	}
	if p.Reference.Dataset != "" {
		if err := ValidName("reference.dataset", p.Reference.Dataset); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Delim is the delimiter as a byte.
func (p *Settings) Delim() byte { return p.Delimiter[0] }

// Enriches reports whether rows are looked up in a reference.
func (p *Settings) Enriches() bool { return p.Reference.Key != "" }

// validate checks the HTTP reference settings.
func (h *HTTPReference) validate(key string) []error {
	var errs []error
	if key == "" {
		errs = append(errs, errors.New("reference.http is set but reference.key is not"))
	}
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("reference.http.url %q: must be an http or https URL", h.URL))
	}
	switch h.Mode {
	case "", "batch":
	case "single":
		if !strings.Contains(h.URL, "{key}") {
			errs = append(errs, fmt.Errorf("reference.http.url %q: single mode needs {key} in the URL", h.URL))
		}
		// A key is escaped for a path segment or a query value; in the
		// host or the fragment it could send the call elsewhere.
		if u, err := url.Parse(strings.ReplaceAll(h.URL, "{key}", "KEY")); err != nil || strings.Contains(u.Host, "KEY") || strings.Contains(u.User.String(), "KEY") || strings.Contains(u.Fragment, "KEY") {
			errs = append(errs, fmt.Errorf("reference.http.url %q: {key} may stand only in the path or the query", h.URL))
		}
	default:
		errs = append(errs, fmt.Errorf("reference.http.mode %q: must be batch or single", h.Mode))
	}
	if h.Auth.BearerEnv != "" && h.Auth.SigV4 != nil {
		errs = append(errs, errors.New("reference.http.auth: bearerEnv and sigv4 are exclusive"))
	}
	if h.MaxBatch < 0 || h.Concurrency < 0 || h.RateLimit < 0 || h.CacheSize < 0 {
		errs = append(errs, errors.New("reference.http: maxBatch, concurrency, rateLimit and cacheSize must not be negative"))
	}
	if h.Retries != nil && (*h.Retries < 0 || *h.Retries > 20) {
		errs = append(errs, fmt.Errorf("reference.http.retries %d: must be from 0 (no retry within a call) to 20", *h.Retries))
	}
	if f := h.Breaker.Failures; f < 0 || f > 1000 {
		errs = append(errs, fmt.Errorf("reference.http.breaker.failures %d: must be from 1 to 1000 failed calls in a row (0 or unset: 5)", f))
	}
	if d := h.Breaker.OpenFor.Duration; d != 0 && (d < 100*time.Millisecond || d > time.Hour) {
		errs = append(errs, fmt.Errorf("reference.http.breaker.openFor %s: must be from 100ms to 1h (unset: 30s)", d))
	}
	return errs
}
