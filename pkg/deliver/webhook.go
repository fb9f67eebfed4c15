package deliver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/tracing"
)

// Headers a webhook request carries.
const (
	SignatureHeader   = "Sluice-Signature" // t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">
	IdempotencyHeader = "Idempotency-Key"
)

// Webhook POSTs the event as JSON to a partner's URL (from configuration
// only), signed with a shared secret the way Stripe signs its webhooks.
type Webhook struct {
	SinkName string // the sink's name in the feed's configuration
	URL      string
	Secret   []byte
	Retries  int           // extra tries on no answer, 429 and 5xx (default 5)
	Backoff  time.Duration // first wait, doubled each try, with jitter (default 1s)
	Timeout  time.Duration // per try (default 30s)
	Client   *http.Client
	Now      func() time.Time
}

var _ sluice.Sink = (*Webhook)(nil)

// Name implements sluice.Sink.
func (w *Webhook) Name() string { return w.SinkName }

// Type implements sluice.Sink.
func (w *Webhook) Type() string { return "webhook" }

// Deliver sends ev until the receiver answers 2xx, or fails with *Failed.
// Each try is signed afresh (the receiver rejects stale timestamps) over
// the same body and idempotency key.
func (w *Webhook) Deliver(ctx context.Context, ev Event) (err error) {
	ctx, span := tracing.StartDelivery(ctx, "webhook", w.SinkName)
	defer func() { tracing.End(span, err) }()
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	key := IdempotencyKey(ev.BatchID, w.SinkName)
	retries, backoff := w.Retries, w.Backoff
	if retries == 0 {
		retries = 5
	}
	if backoff == 0 {
		backoff = time.Second
	}
	for try := 0; ; try++ {
		again, last := w.try(ctx, body, key)
		if last == "" {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("delivery to %s: %s, then %w", w.SinkName, last, ctx.Err())
		}
		if !again || try >= retries {
			return &Failed{Sink: w.SinkName, Reason: fmt.Sprintf("%s after %d tries: %s", Redact(w.URL), try+1, last)}
		}
		d := backoff << min(try, 10)
		d = d/2 + time.Duration(rand.Float64()*float64(d/2))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			// Not a Failed: the process is stopping, and the message
			// comes back to be tried again.
			return fmt.Errorf("delivery to %s: %s, then %w", w.SinkName, last, ctx.Err())
		case <-t.C:
		}
	}
}

// try sends once. last is "" on success, else what went wrong; again says
// whether another try may help.
func (w *Webhook) try(ctx context.Context, body []byte, key string) (again bool, last string) {
	timeout := w.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return false, err.Error()
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(IdempotencyHeader, key)
	req.Header.Set(SignatureHeader, Sign(w.Secret, now(), body))
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(req)
	if err != nil {
		return true, err.Error()
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 300))
	if res.StatusCode/100 == 2 {
		return false, ""
	}
	last = fmt.Sprintf("HTTP %d: %q", res.StatusCode, strings.TrimSpace(string(msg)))
	return res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500, last
}

// Sign is the signature header for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header the way a receiver should: the HMAC
// over the timestamp and the body must match (compared in constant time),
// and the timestamp must be within tolerance of now, so a captured request
// cannot be replayed later.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("signature header lacks t= or v1=")
	}
	if !hmac.Equal([]byte(sig), []byte(mac(secret, ts, body))) {
		return errors.New("signature does not match the body")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("signature timestamp is %s away from now (tolerance %s): a replay?", d.Round(time.Second), tolerance)
	}
	return nil
}

// Redact is a webhook URL as reasons, logs and the console may show it:
// scheme and host only. A partner's URL may carry a credential in its
// user info, its query or its path (a token-in-path hook), and a failure
// reason is stored in the ledger, the DLQ, spans and logs.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(a URL that does not parse)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}
