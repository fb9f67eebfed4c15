// Package ecsprotect turns ECS task scale-in protection on while a worker
// has work in hand and off when it has been idle for a while, through the
// ECS agent's endpoint ($ECS_AGENT_URI/task-protection/v1/state), so that
// a scale-in never kills a chunk half done. It calls the endpoint only at
// idle↔busy transitions, and waits before turning protection off, to stay
// well inside the endpoint's rate limits when messages come one by one.
package ecsprotect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Protector follows a worker's busy state.
type Protector struct {
	URI string // $ECS_AGENT_URI
	// Expires bounds a protection the worker never turns off (it died):
	// the agent drops it after this long. Default 60 minutes.
	Expires time.Duration
	// IdleDelay is how long the worker must stay idle before protection
	// goes off. Default 10 seconds.
	IdleDelay time.Duration
	Client    *http.Client
	Logger    *slog.Logger

	mu        sync.Mutex
	protected bool
	offTimer  *time.Timer
	gen       int
}

// New returns a protector for the agent at uri (empty: not on ECS, and
// Busy does nothing).
func New(uri string, log *slog.Logger) *Protector {
	if log == nil {
		log = slog.Default()
	}
	return &Protector{URI: uri, Expires: time.Hour, IdleDelay: 10 * time.Second, Client: &http.Client{Timeout: 5 * time.Second}, Logger: log}
}

// Busy is the consumer's idle↔busy hook.
func (p *Protector) Busy(busy bool) {
	if p == nil || p.URI == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	if p.offTimer != nil {
		p.offTimer.Stop()
		p.offTimer = nil
	}
	if busy {
		if !p.protected {
			p.protected = true
			p.setLocked(true)
		}
		return
	}
	gen := p.gen
	p.offTimer = time.AfterFunc(p.IdleDelay, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if gen != p.gen || !p.protected {
			return // busy again meanwhile
		}
		p.protected = false
		p.setLocked(false)
	})
}

// setLocked calls the agent; failures are logged, not fatal: without
// protection a scale-in can still stop the task, and SIGTERM drains it.
func (p *Protector) setLocked(on bool) {
	if err := p.Set(context.Background(), on); err != nil {
		p.Logger.Warn("ECS task scale-in protection", "enabled", on, "err", err)
	}
}

// Set calls the agent once.
func (p *Protector) Set(ctx context.Context, on bool) error {
	body := map[string]any{"ProtectionEnabled": on}
	if on {
		body["ExpiresInMinutes"] = int(max(p.Expires, time.Minute).Minutes())
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, p.URI+"/task-protection/v1/state", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("agent answered %s: %s", resp.Status, msg)
	}
	return nil
}
