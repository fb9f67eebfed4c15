package httpref_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/httpref"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// api is a real HTTP server with a scripted behaviour: it answers from
// records, and before each call script may answer instead.
type api struct {
	t       *testing.T
	records map[string]map[string]any
	calls   atomic.Int64
	mu      sync.Mutex
	script  func(n int64, w http.ResponseWriter, r *http.Request) bool // true: answered
	paths   []string
	auth    []string
	srv     *httptest.Server
}

func newAPI(t *testing.T, n int) *api {
	a := &api{t: t, records: map[string]map[string]any{}}
	for i := range n {
		k := fmt.Sprintf("k%04d", i)
		a.records[k] = map[string]any{"id": k, "name": "name " + k, "score": i, "vip": i%2 == 0}
	}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *api) serve(w http.ResponseWriter, r *http.Request) {
	n := a.calls.Add(1)
	a.mu.Lock()
	a.paths = append(a.paths, r.URL.RawPath+"|"+r.URL.Path+"?"+r.URL.RawQuery)
	a.auth = append(a.auth, r.Header.Get("Authorization"))
	script := a.script
	a.mu.Unlock()
	if script != nil && script(n, w, r) {
		return
	}
	if r.Method == http.MethodGet {
		k := strings.TrimPrefix(r.URL.Path, "/records/")
		rec, ok := a.records[k]
		if !ok {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(rec)
		return
	}
	var keys []string
	if err := json.NewDecoder(r.Body).Decode(&keys); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out := []map[string]any{}
	for _, k := range keys {
		if rec, ok := a.records[k]; ok {
			out = append(out, rec)
		}
	}
	json.NewEncoder(w).Encode(out)
}

func (a *api) setScript(f func(n int64, w http.ResponseWriter, r *http.Request) bool) {
	a.mu.Lock()
	a.script = f
	a.mu.Unlock()
}

func refConfig(u string, mod func(*config.HTTPReference)) config.Reference {
	h := &config.HTTPReference{URL: u, MaxBatch: 10, Backoff: config.Duration{Duration: time.Millisecond},
		Timeout: config.Duration{Duration: 2 * time.Second}}
	if mod != nil {
		mod(h)
	}
	return config.Reference{Key: "id", Append: []string{"name", "score", "vip"}, OnMissing: "empty", HTTP: h}
}

func open(t *testing.T, ref config.Reference, opts httpref.Options) sluice.Reference {
	t.Helper()
	c, err := httpref.New(ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Version(t.Context(), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func keys(n int, extra ...string) []string {
	var ks []string
	for i := range n {
		ks = append(ks, fmt.Sprintf("k%04d", i))
	}
	return append(ks, extra...)
}

// want is what a local reference holding the same records answers.
func want(a *api, ks []string) [][]string {
	out := make([][]string, len(ks))
	for i, k := range ks {
		if rec, ok := a.records[k]; ok {
			out[i] = []string{rec["name"].(string), fmt.Sprint(rec["score"]), fmt.Sprint(rec["vip"])}
		}
	}
	return out
}

func check(t *testing.T, got, exp [][]string) {
	t.Helper()
	if len(got) != len(exp) {
		t.Fatalf("%d answers for %d keys", len(got), len(exp))
	}
	for i := range exp {
		if fmt.Sprint(got[i]) != fmt.Sprint(exp[i]) || (got[i] == nil) != (exp[i] == nil) {
			t.Fatalf("key %d: got %q, want %q", i, got[i], exp[i])
		}
	}
}

func TestBatchAnswersAsLocalAndCallsWithinCeil(t *testing.T) {
	a := newAPI(t, 95)
	r := open(t, refConfig(a.srv.URL+"/lookup", nil), httpref.Options{})
	ks := keys(95, "nope1", "k0001", "nope2") // a repeat and two unknown keys
	got, err := r.Lookup(t.Context(), ks)
	if err != nil {
		t.Fatal(err)
	}
	check(t, got, want(a, ks))
	distinct := 97
	if n, max := a.calls.Load(), int64((distinct+9)/10); n > max {
		t.Fatalf("%d calls for %d distinct keys at maxBatch 10; at most %d", n, distinct, max)
	}
	// The cache answers a second chunk with the same keys without a call.
	before := a.calls.Load()
	got, err = r.Lookup(t.Context(), ks)
	if err != nil {
		t.Fatal(err)
	}
	check(t, got, want(a, ks))
	if a.calls.Load() != before {
		t.Fatalf("the cache did not answer: %d more calls", a.calls.Load()-before)
	}
}

func TestSingleEscapesKeys(t *testing.T) {
	a := newAPI(t, 3)
	a.records["../admin"] = map[string]any{"id": "../admin", "name": "dots", "score": 1, "vip": false}
	a.records["a?b=c"] = map[string]any{"id": "a?b=c", "name": "query", "score": 2, "vip": true}
	a.records["x/y z#f"] = map[string]any{"id": "x/y z#f", "name": "slash", "score": 3, "vip": true}
	r := open(t, refConfig(a.srv.URL+"/records/{key}", func(h *config.HTTPReference) { h.Mode = "single" }), httpref.Options{})
	ks := []string{"../admin", "a?b=c", "x/y z#f", "k0001", "missing"}
	got, err := r.Lookup(t.Context(), ks)
	if err != nil {
		t.Fatal(err)
	}
	check(t, got, want(a, ks))
	if n := a.calls.Load(); n != int64(len(ks)) {
		t.Fatalf("%d calls for %d keys in single mode", n, len(ks))
	}
	for _, p := range a.paths {
		// Every request stays under /records/ with no query: the key was
		// one escaped path segment.
		raw, _, _ := strings.Cut(p, "|")
		dec := strings.SplitN(p, "|", 2)[1]
		if !strings.HasPrefix(dec, "/records/") || !strings.HasSuffix(dec, "?") {
			t.Fatalf("a key changed the request's path or query: %q", p)
		}
		if strings.Contains(dec, "..") && !strings.Contains(raw, "%2F") {
			t.Fatalf("../ reached the server unescaped: %q", p)
		}
	}
}

func TestRetriesTransientAnswers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fails int64
		fail  func(w http.ResponseWriter)
	}{
		{"429 burst", 3, func(w http.ResponseWriter) { http.Error(w, "slow down", http.StatusTooManyRequests) }},
		{"5xx", 2, func(w http.ResponseWriter) { http.Error(w, "boom", http.StatusBadGateway) }},
		{"slow", 2, func(w http.ResponseWriter) { time.Sleep(300 * time.Millisecond) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAPI(t, 30)
			a.setScript(func(n int64, w http.ResponseWriter, _ *http.Request) bool {
				if n > tc.fails {
					return false
				}
				tc.fail(w)
				return tc.name != "slow"
			})
			r := open(t, refConfig(a.srv.URL+"/lookup", func(h *config.HTTPReference) {
				h.Concurrency, h.Timeout.Duration = 1, 100*time.Millisecond
			}), httpref.Options{})
			ks := keys(30)
			got, err := r.Lookup(t.Context(), ks)
			if err != nil {
				t.Fatal(err)
			}
			check(t, got, want(a, ks))
			if n, max := a.calls.Load(), 3+tc.fails; n > max {
				t.Fatalf("%d calls; ceil(30/10) + %d retries is %d", n, tc.fails, max)
			}
		})
	}
}

func TestRetriesExhaustedNameTheAPIAndItsAnswer(t *testing.T) {
	a := newAPI(t, 5)
	a.setScript(func(_ int64, w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
		return true
	})
	r := open(t, refConfig(a.srv.URL+"/lookup", func(h *config.HTTPReference) { h.Retries = new(2) }), httpref.Options{})
	_, err := r.Lookup(t.Context(), keys(5))
	if err == nil {
		t.Fatal("a failing API gave no error")
	}
	if sluice.IsPermanent(err) {
		t.Fatalf("an outage must be transient (the chunk is retried): %v", err)
	}
	for _, s := range []string{a.srv.URL + "/lookup", "HTTP 503", "database unavailable", "3 tries"} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not say %q", err, s)
		}
	}
	if n := a.calls.Load(); n != 3 {
		t.Fatalf("%d calls for 1 + 2 retries", n)
	}
}

// TestRetriesZeroFailsAtOnce: retries: 0 is a setting of its own, not
// "the default": one 503 fails the lookup (so the chunk's try) after one call.
func TestRetriesZeroFailsAtOnce(t *testing.T) {
	a := newAPI(t, 5)
	a.setScript(func(n int64, w http.ResponseWriter, _ *http.Request) bool {
		if n > 1 {
			return false
		}
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return true
	})
	r := open(t, refConfig(a.srv.URL+"/lookup", func(h *config.HTTPReference) { h.Retries = new(0) }), httpref.Options{})
	_, err := r.Lookup(t.Context(), keys(5))
	if err == nil || !strings.Contains(err.Error(), "HTTP 503") || !strings.Contains(err.Error(), "after 1 tries") {
		t.Fatalf("want the chunk's try to fail on the first 503, got %v", err)
	}
	if n := a.calls.Load(); n != 1 {
		t.Fatalf("%d calls with retries: 0, want 1", n)
	}
}

// TestOutageOpensBreakerThenRecovers: the third failed call (each after
// its retries) opens the breaker; that lookup then waits it out instead of
// failing, probing once per open period, and succeeds once the API is back.
func TestOutageOpensBreakerThenRecovers(t *testing.T) {
	a := newAPI(t, 20)
	var down atomic.Bool
	down.Store(true)
	a.setScript(func(_ int64, w http.ResponseWriter, _ *http.Request) bool {
		if down.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return true
		}
		return false
	})
	r := open(t, refConfig(a.srv.URL+"/lookup", func(h *config.HTTPReference) {
		h.Retries, h.Concurrency = new(2), 1
		h.Breaker = config.HTTPBreaker{Failures: 3, OpenFor: config.Duration{Duration: 200 * time.Millisecond}}
	}), httpref.Options{})
	for i := range 2 {
		if _, err := r.Lookup(t.Context(), keys(10)); err == nil || !strings.Contains(err.Error(), "after 3 tries") {
			t.Fatalf("call %d during the outage: want the API's error after 3 tries, got %v", i, err)
		}
	}
	if n := a.calls.Load(); n != 6 {
		t.Fatalf("2 calls of 3 tries sent %d requests", n)
	}
	// The third failed call opens the breaker: it waits for the API.
	time.AfterFunc(300*time.Millisecond, func() { down.Store(false) })
	start := time.Now()
	got, err := r.Lookup(t.Context(), keys(20))
	if err != nil {
		t.Fatalf("a lookup that opened the breaker should wait for the API, got %v", err)
	}
	check(t, got, want(a, keys(20)))
	if time.Since(start) < 250*time.Millisecond {
		t.Fatalf("answered after %s: the open breaker did not pause the call", time.Since(start))
	}
	// The tripping call, then at most one probe (3 tries, the last may
	// succeed) per 200 ms open period.
	if n := a.calls.Load(); n > 6+3+3+2 {
		t.Fatalf("%d requests: the open breaker let calls through", n)
	}
}

// TestBreakerCountsCallsNotTries: breaker.failures counts calls, each
// after its retries: retries 10 with failures 5 sends 11 requests.
func TestBreakerCountsCallsNotTries(t *testing.T) {
	a := newAPI(t, 5)
	a.setScript(func(_ int64, w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	})
	r := open(t, refConfig(a.srv.URL+"/lookup", func(h *config.HTTPReference) {
		h.Retries, h.Concurrency = new(10), 1
		h.Breaker = config.HTTPBreaker{Failures: 5}
	}), httpref.Options{})
	_, err := r.Lookup(t.Context(), keys(5))
	if err == nil || !strings.Contains(err.Error(), "after 11 tries") || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("want the API's 503 after 11 tries, got %v", err)
	}
	if n := a.calls.Load(); n != 11 {
		t.Fatalf("retries 10 sent %d requests, want 11", n)
	}
}

// TestEndlessOutageGivesUpNamingTheAPI: with the API down for good, a
// lookup waits out at most ten open periods (here 10 × 100 ms), then
// fails naming the API and its last answer, so the chunk's queue takes over.
func TestEndlessOutageGivesUpNamingTheAPI(t *testing.T) {
	a := newAPI(t, 5)
	a.setScript(func(_ int64, w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return true
	})
	r := open(t, refConfig(a.srv.URL+"/lookup", func(h *config.HTTPReference) {
		h.Retries, h.Concurrency = new(0), 1
		h.Breaker = config.HTTPBreaker{Failures: 1, OpenFor: config.Duration{Duration: 100 * time.Millisecond}}
	}), httpref.Options{})
	start := time.Now()
	_, err := r.Lookup(t.Context(), keys(5))
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), a.srv.URL) || !strings.Contains(err.Error(), "maintenance") || !strings.Contains(err.Error(), "paused") {
		t.Fatalf("want a 'paused' error naming the API and its answer, got %v", err)
	}
	if took < 900*time.Millisecond || took > 5*time.Second {
		t.Fatalf("gave up after %s, want about 10 open periods of 100ms", took)
	}
}

func TestSchemaDriftFailsForGood(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want string
	}{
		{"field gone", `[{"id":"k0000","name":"a","vip":true}]`, `field "score" is missing`},
		{"wrong type", `[{"id":"k0000","name":{"first":"a"},"score":1,"vip":true}]`, `field "name"`},
		{"not a list", `{"records":[]}`, "not a JSON list"},
		{"no key", `[{"name":"a","score":1,"vip":true}]`, `key field "id"`},
		{"batch endpoint gone", "404", "HTTP 404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAPI(t, 1)
			a.setScript(func(_ int64, w http.ResponseWriter, _ *http.Request) bool {
				if tc.body == "404" {
					http.NotFound(w, nil)
					return true
				}
				fmt.Fprint(w, tc.body)
				return true
			})
			r := open(t, refConfig(a.srv.URL+"/lookup", nil), httpref.Options{})
			_, err := r.Lookup(t.Context(), keys(1))
			if err == nil || !sluice.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a permanent error saying %q, got %v", tc.want, err)
			}
		})
	}
}

func TestBearerFromEnvironment(t *testing.T) {
	a := newAPI(t, 3)
	env := map[string]string{"PARTNER_TOKEN": "s3cret"}
	ref := refConfig(a.srv.URL+"/lookup", func(h *config.HTTPReference) { h.Auth.BearerEnv = "PARTNER_TOKEN" })
	r := open(t, ref, httpref.Options{Getenv: func(k string) string { return env[k] }})
	if _, err := r.Lookup(t.Context(), keys(3)); err != nil {
		t.Fatal(err)
	}
	if a.auth[0] != "Bearer s3cret" {
		t.Fatalf("Authorization %q", a.auth[0])
	}
	if _, err := httpref.New(ref, httpref.Options{Getenv: func(string) string { return "" }}); err == nil {
		t.Fatal("an empty token variable was accepted")
	}
}

func TestSigV4SignsWithTheSDK(t *testing.T) {
	a := newAPI(t, 3)
	ref := refConfig(a.srv.URL+"/lookup", func(h *config.HTTPReference) {
		h.Auth.SigV4 = &config.SigV4{Region: "eu-west-1", Service: "execute-api"}
	})
	creds := credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")
	r := open(t, ref, httpref.Options{Credentials: aws.NewCredentialsCache(creds)})
	if _, err := r.Lookup(t.Context(), keys(3)); err != nil {
		t.Fatal(err)
	}
	got := a.auth[0]
	if !strings.HasPrefix(got, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") || !strings.Contains(got, "/eu-west-1/execute-api/aws4_request") || !strings.Contains(got, "Signature=") {
		t.Fatalf("Authorization %q is not a SigV4 signature for execute-api", got)
	}
}

func TestCatalogRefusesLoadAndPinsOneVersion(t *testing.T) {
	c, err := httpref.New(refConfig("http://api.invalid/lookup", nil), httpref.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(context.Background(), sluice.RefSource{}); err == nil {
		t.Fatal("Load accepted rows for an HTTP reference")
	}
	if _, err := c.Version(t.Context(), "http-other"); err == nil {
		t.Fatal("another configuration's version opened")
	}
}

// TestSigV4SignatureVerifies checks the signature as API Gateway would:
// the server rebuilds the canonical request from what it received (the
// headers the Authorization header names as signed, the body) and signs
// it again with the caller's secret at the request's X-Amz-Date; the
// signatures must match, so the payload hash covers the body really sent.
func TestSigV4SignatureVerifies(t *testing.T) {
	type seen struct {
		method, uri string
		header      http.Header
		body        []byte
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		select {
		case got <- seen{r.Method, r.URL.RequestURI(), h, b}:
		default:
		}
		fmt.Fprint(w, `[]`)
	}))
	defer srv.Close()
	ref := refConfig(srv.URL+"/prod/lookup", func(h *config.HTTPReference) {
		h.Auth.SigV4 = &config.SigV4{Region: "eu-west-1", Service: "execute-api"}
	})
	creds := credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "")
	r := open(t, ref, httpref.Options{Credentials: aws.NewCredentialsCache(creds)})
	if _, err := r.Lookup(t.Context(), keys(3)); err != nil {
		t.Fatal(err)
	}
	s := <-got
	auth := s.header.Get("Authorization")
	_, signed, _ := strings.Cut(auth, "SignedHeaders=")
	signed, _, _ = strings.Cut(signed, ",")
	when, err := time.Parse("20060102T150405Z", s.header.Get("X-Amz-Date"))
	if err != nil || signed == "" {
		t.Fatalf("no SigV4 date or signed headers: %q, %v", auth, err)
	}
	req, _ := http.NewRequest(s.method, srv.URL+s.uri, bytes.NewReader(s.body))
	for _, name := range strings.Split(signed, ";") {
		if name != "host" {
			req.Header[http.CanonicalHeaderKey(name)] = s.header.Values(name)
		}
	}
	sum := sha256.Sum256(s.body)
	c, _ := creds.Retrieve(t.Context())
	if err := v4.NewSigner().SignHTTP(t.Context(), c, req, hex.EncodeToString(sum[:]), "execute-api", "eu-west-1", when); err != nil {
		t.Fatal(err)
	}
	if want := req.Header.Get("Authorization"); want != auth {
		t.Fatalf("signature does not verify:\n got  %s\n want %s", auth, want)
	}
}

// TestSingleKeyInQueryAndDotSegments: a {key} after the '?' is
// query-escaped, so "a&admin=1" stays one value of its parameter; the path
// segments no escaping protects ("", ".", "..") are never sent, and the
// lookup fails for good naming the key.
func TestSingleKeyInQueryAndDotSegments(t *testing.T) {
	var mu sync.Mutex
	var queries []url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.Query())
		mu.Unlock()
		id := r.URL.Query().Get("id")
		json.NewEncoder(w).Encode(map[string]any{"id": id, "name": "n " + id, "score": 1, "vip": true})
	}))
	defer srv.Close()
	r := open(t, refConfig(srv.URL+"/records?id={key}&v=1", func(h *config.HTTPReference) { h.Mode = "single" }), httpref.Options{})
	ks := []string{"a&admin=1", "x y+z#f", "../admin"}
	got, err := r.Lookup(t.Context(), ks)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range ks {
		if got[i] == nil || got[i][0] != "n "+k {
			t.Errorf("key %q answered %v", k, got[i])
		}
	}
	for _, q := range queries {
		if len(q) != 2 || len(q["id"]) != 1 || q.Get("v") != "1" {
			t.Errorf("a key changed the query: %v", q)
		}
	}
	calls := len(queries)
	p := open(t, refConfig(srv.URL+"/records/{key}", func(h *config.HTTPReference) { h.Mode = "single" }), httpref.Options{})
	// "", "." and ".." as a path segment would change the path: never
	// sent, they are unknown keys (onMissing applies), as locally.
	got, err = p.Lookup(t.Context(), []string{"..", ".", ""})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != nil {
			t.Errorf("dot-segment key %d answered %v, want unknown", i, v)
		}
	}
	if len(queries) != calls {
		t.Errorf("a dot-segment key reached the server (%d calls)", len(queries)-calls)
	}
}

// TestKeyInPathAndQuery: with {key} in both the path and the query, each
// occurrence is escaped for its place: "a&admin=1" adds no query
// parameter, "a?b=c" and "x/y" stay one path segment, and both places
// carry the key as it is.
func TestKeyInPathAndQuery(t *testing.T) {
	type seen struct {
		path string
		q    url.Values
	}
	var mu sync.Mutex
	var reqs []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, seen{r.URL.EscapedPath(), r.URL.Query()})
		mu.Unlock()
		id := r.URL.Query().Get("id")
		json.NewEncoder(w).Encode(map[string]any{"id": id, "name": "n " + id, "score": 1, "vip": true})
	}))
	defer srv.Close()
	r := open(t, refConfig(srv.URL+"/x/{key}?id={key}&v=1", func(h *config.HTTPReference) { h.Mode = "single"; h.Concurrency = 1 }), httpref.Options{})
	ks := []string{"a&admin=1", "a?b=c", "x/y", "..", "p q+r#s"}
	got, err := r.Lookup(t.Context(), ks)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range ks {
		if k == ".." {
			if got[i] != nil {
				t.Errorf("key %q answered %v, want unknown", k, got[i])
			}
			continue
		}
		if got[i] == nil || got[i][0] != "n "+k {
			t.Errorf("key %q answered %v", k, got[i])
		}
	}
	if len(reqs) != len(ks)-1 {
		t.Fatalf("%d requests for %d sendable keys", len(reqs), len(ks)-1)
	}
	for _, s := range reqs {
		if len(s.q) != 2 || len(s.q["id"]) != 1 || s.q.Get("v") != "1" {
			t.Errorf("a key changed the query: %v", s.q)
		}
		seg, ok := strings.CutPrefix(s.path, "/x/")
		if !ok || strings.Contains(seg, "/") || strings.Contains(seg, "?") {
			t.Errorf("a key changed the path: %s", s.path)
		}
		if k, err := url.PathUnescape(seg); err != nil || k != s.q.Get("id") {
			t.Errorf("path segment %q carries %q, the query %q", seg, k, s.q.Get("id"))
		}
	}
}
