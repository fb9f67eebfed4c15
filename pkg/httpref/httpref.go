// Package httpref is a reference catalog whose records live behind an HTTP
// API (reference.http in the configuration) instead of in a loaded dataset.
// A worker asks the API for the keys of each chunk, in batches or one key per
// call, through a rate limiter, a circuit breaker and a TTL cache that the
// worker's chunks share.
//
// What an answer means: 404 to a single call, or a key missing from a batch
// answer, is an unknown key (reference.onMissing applies); a 404 to a whole
// batch call means a wrong URL and fails the batch. Any other failure is transient:
// the call is retried with backoff and jitter, and once its retries are spent
// the lookup fails, naming the API and its last answer, so the chunk is
// retried later by its queue and, when that too runs out, the batch fails.
// A circuit breaker counts failed calls; while it is open a call waits it
// out (up to ten open periods) instead of spending the chunk's receives.
// A record that lacks a field or holds an object where a value belongs is
// schema drift: the lookup fails permanently, so no batch completes with rows
// silently un-enriched.
package httpref

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// Options are the catalog's dependencies; the zero value works for an API
// without SigV4.
type Options struct {
	Client *http.Client // default: http.DefaultClient's transport, no client timeout (each call has its own)
	Getenv func(string) string
	// Credentials sign requests when auth.sigv4 is set.
	Credentials aws.CredentialsProvider
	// Jitter returns a fraction in [0,1) (default math/rand/v2); tests
	// may fix it.
	Jitter func() float64
}

// Catalog serves one version, named after the API's settings, so a batch
// pins it as it pins a loaded dataset and a configuration change shows as
// a new version.
type Catalog struct {
	ref     *Reference
	version sluice.RefVersion
}

var _ sluice.Catalog = (*Catalog)(nil)

// New builds the catalog for ref.HTTP. It fails when a setting cannot work
// (a bearer variable that is unset, SigV4 without credentials).
func New(ref config.Reference, opts Options) (*Catalog, error) {
	h := ref.HTTP
	if h == nil {
		return nil, errors.New("httpref: reference.http is not set")
	}
	r, err := newReference(ref, opts)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(h.URL + "\x00" + h.Mode + "\x00" + strings.Join(r.fields, ",")))
	v := sluice.RefVersion{
		ID:      "http-" + hex.EncodeToString(sum[:6]),
		Hash:    hex.EncodeToString(sum[:]),
		Source:  h.URL,
		Columns: append([]string{ref.Key}, r.fields...),
		Rows:    -1, // unknown: the API holds them
	}
	return &Catalog{ref: r, version: v}, nil
}

// Current is the one version.
func (c *Catalog) Current(context.Context) (sluice.RefVersion, error) { return c.version, nil }

// Version opens the one version; a batch pinned to another configuration's
// API finds it gone, as with a deleted dataset.
func (c *Catalog) Version(_ context.Context, id string) (sluice.Reference, error) {
	if id != c.version.ID {
		return nil, fmt.Errorf("httpref: version %s: %w", id, sluice.ErrNotFound)
	}
	return c.ref, nil
}

// Versions lists the one version.
func (c *Catalog) Versions(context.Context) ([]sluice.RefVersion, error) {
	return []sluice.RefVersion{c.version}, nil
}

// Delete refuses: the version is the API itself.
func (c *Catalog) Delete(_ context.Context, id string) error {
	return fmt.Errorf("httpref: version %s is the HTTP API %s; it cannot be deleted", id, c.version.Source)
}

// Load refuses: the records live in the API.
func (c *Catalog) Load(context.Context, sluice.RefSource) (sluice.RefVersion, error) {
	return sluice.RefVersion{}, fmt.Errorf("httpref: the reference data comes from the HTTP API %s (reference.http); there is nothing to load", c.version.Source)
}

// Reference looks keys up in the API.
type Reference struct {
	cfg     config.HTTPReference
	key     string   // the key's name, in batch answers
	fields  []string // appended, in order
	client  *http.Client
	token   func() string
	signer  *v4.Signer
	creds   aws.CredentialsProvider
	limiter *rate.Limiter
	breaker *gobreaker.CircuitBreaker[answer]
	cache   *expirable.LRU[string, entry]
	jitter  func() float64
	calls   chan struct{} // a slot per call in flight, shared by the worker's chunks
	last    atomic.Value  // string: the last failed answer, named while the breaker is open
	// openUntil is when the open breaker lets a call probe the API (unix
	// nanoseconds); openFor is breaker.openFor with its default.
	openUntil atomic.Int64
	openFor   time.Duration
}

func newReference(ref config.Reference, opts Options) (*Reference, error) {
	h := *ref.HTTP
	defaults(&h)
	r := &Reference{cfg: h, key: h.KeyField, fields: h.Fields, client: opts.Client, jitter: opts.Jitter}
	if r.key == "" {
		r.key = ref.Key
	}
	if len(r.fields) == 0 {
		r.fields = ref.Append
	}
	if r.client == nil {
		r.client = &http.Client{}
	}
	if r.jitter == nil {
		r.jitter = rand.Float64
	}
	if err := r.auth(h.Auth, opts); err != nil {
		return nil, err
	}
	r.limiter = rate.NewLimiter(rate.Inf, 1)
	if h.RateLimit > 0 {
		r.limiter = rate.NewLimiter(rate.Limit(h.RateLimit), 1) // no burst: the API sees at most rateLimit calls in any second
	}
	r.breaker = r.newBreaker(h.URL, h.Breaker)
	r.cache = expirable.NewLRU[string, entry](h.CacheSize, nil, h.CacheTTL.Duration)
	r.calls = make(chan struct{}, h.Concurrency)
	return r, nil
}

// defaults fills the settings left at zero.
func defaults(h *config.HTTPReference) {
	if h.Mode == "" {
		h.Mode = "batch"
	}
	if h.MaxBatch == 0 {
		h.MaxBatch = 100
	}
	if h.Mode == "single" {
		h.MaxBatch = 1
	}
	if h.Concurrency == 0 {
		h.Concurrency = 4
	}
	if h.Timeout.Duration == 0 {
		h.Timeout.Duration = 10 * time.Second
	}
	if h.Retries == nil {
		h.Retries = new(3)
	}
	if h.Backoff.Duration == 0 {
		h.Backoff.Duration = 200 * time.Millisecond
	}
	if h.CacheTTL.Duration == 0 {
		h.CacheTTL.Duration = 5 * time.Minute
	}
	if h.CacheSize == 0 {
		h.CacheSize = 100_000
	}
}

// auth prepares the bearer token or the SigV4 signer.
func (r *Reference) auth(a config.HTTPAuth, opts Options) error {
	if a.BearerEnv != "" {
		getenv := opts.Getenv
		if getenv == nil {
			return errors.New("httpref: auth.bearerEnv is set but no environment was given")
		}
		if getenv(a.BearerEnv) == "" {
			return fmt.Errorf("httpref: auth.bearerEnv: the environment variable %s is empty", a.BearerEnv)
		}
		// Read at every call, so a rotated token is picked up.
		r.token = func() string { return getenv(a.BearerEnv) }
	}
	if a.SigV4 != nil {
		if opts.Credentials == nil {
			return errors.New("httpref: auth.sigv4 is set but no AWS credentials were given")
		}
		r.signer, r.creds = v4.NewSigner(), opts.Credentials
	}
	return nil
}

// newBreaker opens after consecutive failed calls (each after its retries:
// 429, 5xx, timeouts); while it is open a call waits (see call) instead of
// spending every chunk's retries on a dead API.
func (r *Reference) newBreaker(name string, b config.HTTPBreaker) *gobreaker.CircuitBreaker[answer] {
	open, trips := b.OpenFor.Duration, uint32(b.Failures)
	if open == 0 {
		open = 30 * time.Second
	}
	if trips == 0 {
		trips = 5
	}
	r.openFor = open
	return gobreaker.NewCircuitBreaker[answer](gobreaker.Settings{
		Name:        name,
		Timeout:     open,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= trips },
		// A 400 or 403 is the request's fault, not the API's health.
		IsSuccessful: func(err error) bool { return err == nil || !retryable(err) },
		OnStateChange: func(_ string, _, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				r.openUntil.Store(time.Now().Add(open).UnixNano())
			}
		},
	})
}
