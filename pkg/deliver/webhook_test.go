package deliver_test

import (
	"context"
	"errors"
	"github.com/sluicehq/sluice/pkg/tracing"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/deliver"
)

var secret = []byte("whsec_test")

// receiver is a partner's endpoint: it checks the signature, fails the
// first failFirst tries, may drop its answer after recording (the sender
// then sees no answer), and records each idempotency key once.
type receiver struct {
	mu         sync.Mutex
	tries      int
	failFirst  int
	dropAnswer map[int]bool // tries whose answer is lost after recording
	records    map[string][]byte
	rejected   []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.tries++
	if err := deliver.Verify(secret, r.Header.Get(deliver.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
		rc.rejected = append(rc.rejected, err.Error())
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if rc.tries <= rc.failFirst {
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	key := r.Header.Get(deliver.IdempotencyHeader)
	if _, dup := rc.records[key]; !dup {
		rc.records[key] = body
	}
	if rc.dropAnswer[rc.tries] {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}
}

func newReceiver(t *testing.T, rc *receiver) string {
	rc.records = map[string][]byte{}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return srv.URL
}

func event(id string) deliver.Event {
	return deliver.Event{Version: deliver.EventVersion, BatchID: id, Name: "orders.csv", State: "completed",
		RowsIn: 3, RowsOut: 2, RowsRejected: 1, OutputSHA256: strings.Repeat("ab", 32), FinishedAt: time.Unix(1700000000, 0).UTC()}
}

// TestWebhookExactlyOnceAtEveryFaultPoint: whatever fails (the receiver
// before it records, its answer after it records, or the sender after the
// receiver recorded but before the batch recorded the delivery, which
// repeats the whole delivery), the receiver ends with one record per batch.
func TestWebhookExactlyOnceAtEveryFaultPoint(t *testing.T) {
	for _, tc := range []struct {
		name       string
		failFirst  int
		dropAnswer map[int]bool
		redeliver  bool // a crash before the batch recorded "delivered": the step runs again
	}{
		{name: "receiver fails first 3 tries", failFirst: 3},
		{name: "answer lost after recording", dropAnswer: map[int]bool{1: true}},
		{name: "crash between delivering and recording", redeliver: true},
		{name: "all at once", failFirst: 2, dropAnswer: map[int]bool{3: true}, redeliver: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := &receiver{failFirst: tc.failFirst, dropAnswer: tc.dropAnswer}
			wh := &deliver.Webhook{SinkName: "partner", URL: newReceiver(t, rc), Secret: secret, Backoff: time.Millisecond}
			for _, id := range []string{"batch-1", "batch-2"} {
				if err := wh.Deliver(t.Context(), event(id)); err != nil {
					t.Fatal(err)
				}
				if tc.redeliver {
					if err := wh.Deliver(t.Context(), event(id)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(rc.records) != 2 || len(rc.rejected) != 0 {
				t.Fatalf("%d records (want one per batch), %d rejected: %v", len(rc.records), len(rc.rejected), rc.rejected)
			}
			if !strings.Contains(string(rc.records[deliver.IdempotencyKey("batch-1", "partner")]), `"batchId":"batch-1"`) {
				t.Fatalf("the record for batch-1 is %s", rc.records[deliver.IdempotencyKey("batch-1", "partner")])
			}
		})
	}
}

func TestWebhookPersistentFailureNamesTheReason(t *testing.T) {
	rc := &receiver{failFirst: 1000}
	wh := &deliver.Webhook{SinkName: "partner", URL: newReceiver(t, rc), Secret: secret, Retries: 2, Backoff: time.Millisecond}
	err := wh.Deliver(t.Context(), event("b"))
	var f *deliver.Failed
	if !errors.As(err, &f) || f.Sink != "partner" || !strings.Contains(f.Reason, "HTTP 503") || !strings.Contains(f.Reason, "3 tries") {
		t.Fatalf("want a delivery failure naming the answer, got %v", err)
	}
	// A refusal (wrong secret: 401) is not retried.
	rc2 := &receiver{}
	bad := &deliver.Webhook{SinkName: "partner", URL: newReceiver(t, rc2), Secret: []byte("wrong"), Backoff: time.Millisecond}
	if err := bad.Deliver(t.Context(), event("b")); !errors.As(err, &f) || !strings.Contains(f.Reason, "HTTP 401") || rc2.tries != 1 {
		t.Fatalf("a wrong secret: %v after %d tries", err, rc2.tries)
	}
}

func TestVerifyRejectsTamperingAndReplays(t *testing.T) {
	body := []byte(`{"batchId":"b"}`)
	now := time.Now()
	h := deliver.Sign(secret, now, body)
	if err := deliver.Verify(secret, h, body, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	if deliver.Verify(secret, h, []byte(`{"batchId":"c"}`), now, time.Minute) == nil {
		t.Fatal("a changed body verified")
	}
	if deliver.Verify([]byte("other"), h, body, now, time.Minute) == nil {
		t.Fatal("another secret verified")
	}
	if deliver.Verify(secret, h, body, now.Add(10*time.Minute), time.Minute) == nil {
		t.Fatal("a replay ten minutes later verified")
	}
	if deliver.Verify(secret, "v1=abc", body, now, time.Minute) == nil {
		t.Fatal("a header without a timestamp verified")
	}
}

// TestWebhookDeliveryIsASpan: a delivery is a "deliver" span in the
// batch's trace, marked failed when the sink refused.
func TestWebhookDeliveryIsASpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	shutdown := tracing.Install(sdktrace.NewSimpleSpanProcessor(exp), "test")
	defer shutdown(context.Background())
	ctx, root := tracing.Start(t.Context(), "notify")
	bad := &deliver.Webhook{SinkName: "partner", URL: newReceiver(t, &receiver{}), Secret: []byte("wrong"), Backoff: time.Millisecond}
	if bad.Deliver(ctx, event("b")) == nil {
		t.Fatal("a wrong secret was accepted")
	}
	root.End()
	spans := exp.GetSpans()
	if len(spans) != 2 || spans[0].Name != "deliver" || spans[0].Parent.SpanID() != root.SpanContext().SpanID() || spans[0].Status.Code != codes.Error {
		t.Fatalf("spans %v", spans)
	}
}

// TestFailureReasonHidesTheURLsCredentials: a failed delivery's reason goes
// to the ledger, the DLQ, logs and spans, so it names the partner's host
// only, never a password, a query token or a token-in-path.
func TestFailureReasonHidesTheURLsCredentials(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://sluice:TOPSECRET@", 1) + "/hooks/PATHTOKEN?token=BEARER123"
	w := &deliver.Webhook{SinkName: "p", URL: u, Secret: []byte("s"), Retries: 1, Backoff: time.Millisecond}
	err := w.Deliver(t.Context(), deliver.Event{Version: 1, BatchID: "b1", Name: "x.csv", State: "completed"})
	if err == nil {
		t.Fatal("a 401 was taken for a delivery")
	}
	for _, secret := range []string{"TOPSECRET", "BEARER123", "PATHTOKEN"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the reason shows %s: %v", secret, err)
		}
	}
	if !strings.Contains(err.Error(), strings.TrimPrefix(srv.URL, "http://")) {
		t.Errorf("the reason does not name the partner's host: %v", err)
	}
}
