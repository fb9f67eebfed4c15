package embedded_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/deliver"
	"github.com/sluicehq/sluice/pkg/deliver/delivertest"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/metrics"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
)

const partnerSecret = "whsec_embedded"

func webhookConfig(t *testing.T, url string) *config.Pipeline {
	t.Setenv("SLUICE_TEST_PARTNER_SECRET", partnerSecret)
	cfg := config.Default()
	cfg.Deliver = []config.Sink{{Name: "partner", Type: config.SinkWebhook, URL: url, SecretEnv: "SLUICE_TEST_PARTNER_SECRET",
		Retries: 3, Backoff: config.Duration{Duration: 5 * time.Millisecond}, Timeout: config.Duration{Duration: 5 * time.Second}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestWebhookDeliveredOnce: the seed sample's batch reaches a receiver
// that checks signatures and fails its first two tries: one record, the
// event naming the output by its SHA-256 and its file, the batch
// completed with its sink delivered, the output unchanged.
func TestWebhookDeliveredOnce(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	plain := runFile(t, config.Default(), orders, fin)
	rc := delivertest.NewReceiver(t, partnerSecret, 2)
	got := runFile(t, webhookConfig(t, rc.URL), orders, fin)
	b := got.batch
	if b.State != sluice.StateCompleted || len(got.emails) != 1 || !bytes.Equal(got.output, plain.output) {
		t.Fatalf("batch %s, %d emails, output equal to a run without sinks: %v", b.State, len(got.emails), bytes.Equal(got.output, plain.output))
	}
	d, ok := b.Delivery("partner")
	if !ok || d.State != sluice.DeliveryDelivered || d.Type != "webhook" || d.Attempts != 1 || d.At.IsZero() {
		t.Fatalf("delivery %+v", b.Deliveries)
	}
	recs := rc.Records()
	ev, ok := recs[deliver.IdempotencyKey(b.ID, "partner")]
	if len(recs) != 1 || !ok {
		t.Fatalf("%d records %v", len(recs), recs)
	}
	var man pipeline.Manifest
	js, _ := os.ReadFile(got.eng.Path(b.ManifestKey))
	json.Unmarshal(js, &man)
	if ev.BatchID != b.ID || ev.RowsOut != 10000 || ev.OutputSHA256 != man.Output.SHA256 || ev.OutputSHA256 == "" ||
		!strings.Contains(ev.OutputLink, b.ID) || ev.State != "completed" || !ev.FinishedAt.Equal(b.MergedAt) {
		t.Fatalf("event %+v (manifest output %s)", ev, man.Output.SHA256)
	}
	if len(rc.Rejected()) != 0 {
		t.Fatalf("the receiver rejected: %v", rc.Rejected())
	}
	// The receiver really checks: a forged signature is refused.
	req, _ := http.NewRequest(http.MethodPost, rc.URL, strings.NewReader(`{"version":1}`))
	req.Header.Set(deliver.SignatureHeader, deliver.Sign([]byte("guess"), time.Now(), []byte(`{"version":1}`)))
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a forged signature: %v %v", res, err)
	}
}

// TestRefusedDeliveryFailsTheSinkNotTheBatch: a receiver that answers 400
// leaves the batch completed with its sink delivery_failed and the
// reason, the message in deliveries-dlq with that reason; once the
// receiver takes it again, a retry delivers it.
func TestRefusedDeliveryFailsTheSinkNotTheBatch(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	rc := delivertest.NewReceiver(t, partnerSecret, 0)
	rc.Refuse(http.StatusBadRequest)
	eng, err := embedded.Open(t.TempDir(), webhookConfig(t, rc.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	eng.Metrics = metrics.New()
	got := runOn(t, eng, orders, fin)
	b := got.batch
	d, _ := b.Delivery("partner")
	if b.State != sluice.StateCompleted || d.State != sluice.DeliveryFailed || !strings.Contains(d.Reason, "HTTP 400") || !strings.Contains(d.Reason, "we do not take this feed") {
		t.Fatalf("batch %s, delivery %+v", b.State, d)
	}
	dead, err := got.eng.Queues[pipeline.QueueDeliveries].PeekDead(t.Context(), 10)
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].Reason, "HTTP 400") || !strings.Contains(string(dead[0].Body), b.ID) {
		t.Fatalf("deliveries-dlq: %+v, %v", dead, err)
	}
	if _, err := pipeline.RetryDeliveries(t.Context(), got.eng.Ledger, got.eng.Queues[pipeline.QueueDeliveries], b.ID, "nope", false); err == nil || !strings.Contains(err.Error(), `no sink "nope"`) {
		t.Fatalf("retry of an unknown sink: %v", err)
	}
	rc.Refuse(0)
	queued, err := pipeline.RetryDeliveries(t.Context(), got.eng.Ledger, got.eng.Queues[pipeline.QueueDeliveries], b.ID, "", false)
	if err != nil || len(queued) != 1 {
		t.Fatalf("retry: %v %v", queued, err)
	}
	b = runUntilDelivered(t, got.eng, b.ID)
	if d, _ := b.Delivery("partner"); d.State != sluice.DeliveryDelivered || d.Attempts != 2 || d.Reason != "" {
		t.Fatalf("after the retry: %+v", d)
	}
	if len(rc.Records()) != 1 {
		t.Fatalf("%d records after the retry", len(rc.Records()))
	}
	if f, d := deliveries(t, eng.Metrics, "failed"), deliveries(t, eng.Metrics, "delivered"); f != 1 || d != 1 {
		t.Fatalf("sluice_deliveries_total{type=webhook}: failed %v, delivered %v; want 1 and 1", f, d)
	}
	if _, err := pipeline.RetryDeliveries(t.Context(), got.eng.Ledger, got.eng.Queues[pipeline.QueueDeliveries], b.ID, "", false); err == nil || !strings.Contains(err.Error(), "partner delivered") {
		t.Fatalf("a retry with nothing failed: %v", err)
	}
}

// TestDeliveryCrashAtEveryPoint stops the handler at each delivery fault
// point once, as a crash there would, and lets the queue bring the
// message back: the receiver ends with one record, the sink delivered.
// (cmd/sluice TestDeliveryCrashAndRerun kills the process for real.)
func TestDeliveryCrashAtEveryPoint(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	for _, point := range pipeline.DeliveryPoints {
		t.Run(point, func(t *testing.T) {
			rc := delivertest.NewReceiver(t, partnerSecret, 1)
			eng, err := embedded.Open(t.TempDir(), webhookConfig(t, rc.URL), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { eng.Close() })
			hit := 0
			eng.Fault = func(p string) error {
				if p == point {
					hit++
					if hit == 1 {
						return errors.New("crash")
					}
				}
				return nil
			}
			got := runOn(t, eng, orders, fin)
			// The merge's retry finds the sink delivered already (the
			// message went out before the stop) and sends no second one.
			if want := 2; hit < want && !(point == pipeline.PointMergeAfterDeliveries && hit == 1) {
				t.Fatalf("the point was reached %d times", hit)
			}
			if len(got.emails) != 1 || got.batch.State != sluice.StateCompleted {
				t.Fatalf("batch %s with %d emails", got.batch.State, len(got.emails))
			}
			if d, _ := got.batch.Delivery("partner"); d.State != sluice.DeliveryDelivered {
				t.Fatalf("delivery %+v", d)
			}
			if n := len(rc.Records()); n != 1 {
				t.Fatalf("%d records, want 1", n)
			}
			if point == pipeline.PointDeliverAfterSend && rc.Accepted() != 2 {
				t.Fatalf("a crash after sending must repeat the delivery (same key): %d accepted", rc.Accepted())
			}
		})
	}
}

// runUntilDelivered runs the engine until the batch has no pending sink.
func runUntilDelivered(t *testing.T, eng *embedded.Engine, id string) sluice.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	go func() { done <- eng.Run(runCtx) }()
	b, err := eng.Wait(ctx, id, nil)
	stop()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFeedSinksReplaceTheDefault: a feed's own deliver: list replaces the
// top level's; the batch of that feed delivers to its sinks only.
func TestFeedSinksReplaceTheDefault(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	rc := delivertest.NewReceiver(t, partnerSecret, 0)
	other := delivertest.NewReceiver(t, partnerSecret, 0)
	t.Setenv("SLUICE_TEST_PARTNER_SECRET", partnerSecret)
	sink := "{name: %s, type: webhook, url: %q, secretEnv: SLUICE_TEST_PARTNER_SECRET, backoff: 5ms}"
	cfg, err := config.Parse([]byte("deliver: [" + fmt.Sprintf(sink, "top", other.URL) + "]\n" +
		"feeds:\n  - {name: orders, prefix: \"\", deliver: [" + fmt.Sprintf(sink, "partner", rc.URL) + "]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := embedded.Open(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	eng.Feed = "orders"
	got := runOn(t, eng, orders, fin)
	b := got.batch
	if b.Feed != "orders" || len(b.Deliveries) != 1 || b.Deliveries[0].Sink != "partner" || b.Deliveries[0].State != sluice.DeliveryDelivered {
		t.Fatalf("feed %s, deliveries %+v", b.Feed, b.Deliveries)
	}
	if len(rc.Records()) != 1 || other.Accepted() != 0 {
		t.Fatalf("feed's sink %d records, top level's %d", len(rc.Records()), other.Accepted())
	}
}

// TestWebhookWithoutSecretRefusesToStart: a webhook sink whose secret
// variable is unset or empty stops the engine from opening, naming it,
// rather than sending deliveries every partner would refuse.
func TestWebhookWithoutSecretRefusesToStart(t *testing.T) {
	for _, v := range []string{"", "  "} {
		t.Setenv("SLUICE_TEST_NO_SECRET", v)
		cfg := config.Default()
		cfg.Deliver = []config.Sink{{Name: "partner", Type: config.SinkWebhook, URL: "https://partner.example/hook", SecretEnv: "SLUICE_TEST_NO_SECRET"}}
		eng, err := embedded.Open(t.TempDir(), cfg, nil)
		if err == nil {
			eng.Close()
			t.Fatalf("secret %q: the engine opened", v)
		}
		if !strings.Contains(err.Error(), "SLUICE_TEST_NO_SECRET") || !strings.Contains(err.Error(), "partner") {
			t.Fatalf("secret %q: %v", v, err)
		}
	}
}

// deliveries reads sluice_deliveries_total{type="webhook",outcome}.
func deliveries(t *testing.T, m *metrics.Metrics, outcome string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "sluice_deliveries_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["type"] == "webhook" && labels["outcome"] == outcome {
				return mt.GetCounter().GetValue()
			}
		}
	}
	t.Fatal("no sluice_deliveries_total series")
	return 0
}
