// Package delivertest is test support for delivery: a partner's webhook
// endpoint as a real HTTP server that checks each request's signature
// and timestamp the way a receiver should, fails scripted tries, and
// records each idempotency key once.
package delivertest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/deliver"
)

// Receiver is a partner's endpoint.
type Receiver struct {
	URL    string
	Secret []byte

	mu        sync.Mutex
	tries     int
	failFirst int // answer 503 to this many valid tries
	status    int // when set, answer it to every valid try (a refusal: 400)
	records   map[string]deliver.Event
	keys      []string // in arrival order, repeats included
	rejected  []string
}

// NewReceiver starts a receiver that fails its first failFirst valid tries
// with 503; it stops with the test.
func NewReceiver(t testing.TB, secret string, failFirst int) *Receiver {
	r := &Receiver{Secret: []byte(secret), failFirst: failFirst, records: map[string]deliver.Event{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/hooks/sluice"
	return r
}

// Refuse makes every later valid try get status (0: accept again).
func (r *Receiver) Refuse(status int) {
	r.mu.Lock()
	r.status = status
	r.mu.Unlock()
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := deliver.Verify(r.Secret, req.Header.Get(deliver.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
		r.rejected = append(r.rejected, err.Error())
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	r.tries++
	if r.status != 0 {
		http.Error(w, "we do not take this feed any more", r.status)
		return
	}
	if r.tries <= r.failFirst {
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	// Every event a test sees is checked against the documented schema.
	var ev deliver.Event
	if err := deliver.ValidateEvent(body); err != nil {
		r.rejected = append(r.rejected, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	key := req.Header.Get(deliver.IdempotencyHeader)
	r.keys = append(r.keys, key)
	if _, dup := r.records[key]; !dup {
		r.records[key] = ev
	}
	w.WriteHeader(http.StatusNoContent)
}

// Records are the events kept, one per idempotency key.
func (r *Receiver) Records() map[string]deliver.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]deliver.Event, len(r.records))
	for k, v := range r.records {
		out[k] = v
	}
	return out
}

// Accepted is how many valid tries were accepted, repeats included.
func (r *Receiver) Accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys)
}

// Rejected lists why requests failed the signature check or the schema.
func (r *Receiver) Rejected() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.rejected...)
}
