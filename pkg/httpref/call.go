package httpref

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sony/gobreaker/v2"
)

// maxBody bounds what one answer may cost in memory.
const maxBody = 64 << 20

// answer is one HTTP answer the caller reads: 2xx or 404.
type answer struct {
	status int
	body   []byte
}

// callError is a failed try: its status (0 for no answer) and what the
// API said, kept to name in the batch's failure.
type callError struct {
	status     int
	last       string
	retryAfter time.Duration
}

func (e *callError) Error() string { return e.last }

// retryable reports whether a try may succeed when repeated: 429, 5xx and
// no answer at all (timeouts, refused connections).
func retryable(err error) bool {
	var ce *callError
	if !errors.As(err, &ce) {
		return false
	}
	return ce.status == 0 || ce.status == http.StatusTooManyRequests || ce.status >= 500
}

// call sends one request (rebuilt for each try) with the retries of
// reference.http.retries. The breaker wraps the whole call, retries
// included, so breaker.failures counts failed calls as configured, not
// tries. While it is open the call waits the open time out here, the
// chunk's message kept invisible by the consumer's heartbeat, so an
// outage costs time rather than the message's receives; after
// pausesPerReceive open periods it gives up, and the chunk's queue
// retries it later. The error names the API and its last answer.
func (r *Reference) call(ctx context.Context, method, url string, body []byte) (answer, error) {
	var paused time.Duration
	for {
		a, err := r.breaker.Execute(func() (answer, error) { return r.retried(ctx, method, url, body) })
		if err == nil || ctx.Err() != nil || !r.pause(err) {
			return a, err
		}
		d := r.openLeft()
		if paused+d > pausesPerReceive*r.openFor {
			return answer{}, fmt.Errorf("reference API %s is failing, calls paused for %s (breaker open); last answer: %s", r.cfg.URL, paused.Round(time.Millisecond), r.lastAnswer())
		}
		if err := sleep(ctx, d); err != nil {
			return answer{}, err
		}
		paused += d
	}
}

// pause reports whether a failed call should wait for the breaker: it was
// refused by the open breaker, or its own failure left the breaker open
// (it tripped it, or was the half-open probe).
func (r *Reference) pause(err error) bool {
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return true
	}
	return retryable(err) && r.breaker.State() == gobreaker.StateOpen
}

// pausesPerReceive bounds how many open periods one call waits out before
// its chunk gives the receive back (so a dead API fails the batch within
// about MaxReceive × pausesPerReceive × openFor plus the queue's backoff).
const pausesPerReceive = 10

// openLeft is how long the breaker stays open; in half-open, while another
// call probes the API, a tenth of the open time.
func (r *Reference) openLeft() time.Duration {
	d := time.Until(time.Unix(0, r.openUntil.Load()))
	return max(d, r.openFor/10, time.Millisecond)
}

// retried is one call: its tries, with backoff between them.
func (r *Reference) retried(ctx context.Context, method, url string, body []byte) (answer, error) {
	for try := 0; ; try++ {
		if err := r.limiter.Wait(ctx); err != nil {
			return answer{}, err
		}
		a, err := r.try(ctx, method, url, body)
		if err == nil {
			return a, nil
		}
		r.last.Store(err.Error())
		if !retryable(err) || try >= *r.cfg.Retries || ctx.Err() != nil {
			return answer{}, fmt.Errorf("reference API %s: %s %s failed after %d tries; last answer: %w", r.cfg.URL, method, url, try+1, err)
		}
		if err := sleep(ctx, r.wait(try, err)); err != nil {
			return answer{}, err
		}
	}
}

// lastAnswer is the API's last failed answer seen by any chunk: while
// the breaker is open it is what the batch's failure names.
func (r *Reference) lastAnswer() string {
	if s, ok := r.last.Load().(string); ok {
		return s
	}
	return "none recorded"
}

// wait is the backoff before retry number try+1: doubled each time, with
// full jitter over its upper half so workers do not retry in step, and at
// least what a 429's Retry-After asks (capped at a minute).
func (r *Reference) wait(try int, err error) time.Duration {
	d := r.cfg.Backoff.Duration << min(try, 10)
	d = d/2 + time.Duration(r.jitter()*float64(d/2))
	var ce *callError
	if errors.As(err, &ce) && ce.retryAfter > d {
		d = min(ce.retryAfter, time.Minute)
	}
	return d
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// try sends the request once, bounded by reference.http.timeout.
func (r *Reference) try(ctx context.Context, method, url string, body []byte) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout.Duration)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return answer{}, &callError{status: -1, last: err.Error()}
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := r.authorize(ctx, req, body); err != nil {
		return answer{}, &callError{status: -1, last: err.Error()}
	}
	res, err := r.client.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return answer{}, &callError{last: fmt.Sprintf("no answer within %s", r.cfg.Timeout.Duration)}
		}
		return answer{}, &callError{last: err.Error()}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxBody+1))
	if err != nil {
		return answer{}, &callError{last: fmt.Sprintf("HTTP %d, then the body broke off: %v", res.StatusCode, err)}
	}
	if len(b) > maxBody {
		return answer{}, &callError{status: -1, last: fmt.Sprintf("HTTP %d with a body over %d bytes", res.StatusCode, maxBody)}
	}
	if res.StatusCode/100 == 2 || res.StatusCode == http.StatusNotFound {
		return answer{status: res.StatusCode, body: b}, nil
	}
	return answer{}, &callError{
		status:     res.StatusCode,
		last:       fmt.Sprintf("HTTP %d: %s", res.StatusCode, snippet(b)),
		retryAfter: retryAfter(res.Header.Get("Retry-After")),
	}
}

// authorize adds the bearer token or the SigV4 signature.
func (r *Reference) authorize(ctx context.Context, req *http.Request, body []byte) error {
	if r.token != nil {
		req.Header.Set("Authorization", "Bearer "+r.token())
	}
	if r.signer == nil {
		return nil
	}
	creds, err := r.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("sigv4 credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	s := r.cfg.Auth.SigV4
	return r.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), s.Service, s.Region, time.Now())
}

func retryAfter(v string) time.Duration {
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// snippet keeps an answer's head for an error message.
func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "…"
	}
	return strconv.Quote(string(b))
}
