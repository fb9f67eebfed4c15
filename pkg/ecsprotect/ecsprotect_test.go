package ecsprotect

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// agent stands in for the ECS agent's task-protection endpoint (there is
// no ECS here); it records what it was asked.
type agent struct {
	mu    sync.Mutex
	calls []map[string]any
}

func (a *agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut || r.URL.Path != "/task-protection/v1/state" {
		http.Error(w, "no", http.StatusNotFound)
		return
	}
	var body map[string]any
	json.NewDecoder(r.Body).Decode(&body)
	a.mu.Lock()
	a.calls = append(a.calls, body)
	a.mu.Unlock()
	w.Write([]byte(`{"protection":{}}`))
}

func (a *agent) seen() []map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]map[string]any(nil), a.calls...)
}

func TestTransitionsOnlyAndDelayedOff(t *testing.T) {
	ag := &agent{}
	srv := httptest.NewServer(ag)
	defer srv.Close()
	p := New(srv.URL, nil)
	p.IdleDelay = 150 * time.Millisecond
	// Many short messages one after another: busy, idle, busy, idle ...
	for range 50 {
		p.Busy(true)
		p.Busy(false)
	}
	if got := ag.seen(); len(got) != 1 || got[0]["ProtectionEnabled"] != true || got[0]["ExpiresInMinutes"] != float64(60) {
		t.Fatalf("calls while working: %v; want one call turning protection on", got)
	}
	time.Sleep(400 * time.Millisecond)
	got := ag.seen()
	if len(got) != 2 || got[1]["ProtectionEnabled"] != false {
		t.Fatalf("calls after going idle: %v; want protection off once", got)
	}
}

func TestNotOnECS(t *testing.T) {
	var p *Protector
	p.Busy(true) // a nil protector is a no-op
	New("", nil).Busy(true)
}
