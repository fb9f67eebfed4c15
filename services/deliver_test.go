package services_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/deliver"
	"github.com/sluicehq/sluice/pkg/deliver/delivertest"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// waitDeliveries waits until no sink of the batch is pending.
func (s *stack) waitDeliveries(id string, within time.Duration) sluice.Batch {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, err := s.ledger.GetBatch(s.t.Context(), id)
		if err != nil {
			s.t.Fatal(err)
		}
		if len(b.Deliveries) > 0 && !b.DeliveriesPending() {
			return b
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("batch %s: deliveries still pending after %v: %+v", id, within, b.Deliveries)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDeliveriesThroughFiveServices: the four stage services and the
// deliverer on the emulators. A batch of a feed with a webhook sink (a
// signature-checking receiver that fails its first two tries) and an sqs
// sink (another team's queue, read by a test consumer that validates the
// event against its schema) ends with both delivered, one record each; a
// batch of a feed whose receiver refuses (400) ends completed, its sink
// delivery_failed, the message in deliveries-dlq.
func TestDeliveriesThroughFiveServices(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	const secret = "whsec_services"
	rc := delivertest.NewReceiver(t, secret, 2)
	refusing := delivertest.NewReceiver(t, secret, 0)
	refusing.Refuse(http.StatusBadRequest)
	s := newStack(t, 4000)
	cfg, err := awsconfig.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	client := sqs.NewFromConfig(cfg)
	q, err := client.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(s.prefix + "partner-events")})
	if err != nil {
		t.Fatal(err)
	}
	hook := "{name: partner, type: webhook, url: %q, secretEnv: SLUICE_TEST_PARTNER_SECRET, retries: 3, backoff: 10ms, timeout: 5s}"
	os.WriteFile(s.cfgFile, []byte(fmt.Sprintf("chunkRows: 4000\nfeeds:\n"+
		"  - {name: main, prefix: main/, deliver: ["+hook+", {name: events, type: sqs, queueUrl: %q}]}\n"+
		"  - {name: gone, prefix: gone/, deliver: ["+hook+"]}\n", rc.URL, *q.QueueUrl, refusing.URL)), 0o644)
	s.env = append(s.env, "SLUICE_TEST_PARTNER_SECRET="+secret)
	loadReference(t, s, fin)
	s.startAll()
	s.send("ingest", s.upload(orders, "main/orders.csv"))
	s.send("ingest", s.upload(orders, "gone/orders.csv"))

	b := s.waitBatch("input/main/orders.csv", 2*time.Minute)
	b = s.waitDeliveries(b.ID, time.Minute)
	for _, d := range b.Deliveries {
		if d.State != sluice.DeliveryDelivered || d.Attempts < 1 {
			t.Fatalf("main: %+v", b.Deliveries)
		}
	}
	if recs := rc.Records(); len(recs) != 1 || recs[deliver.IdempotencyKey(b.ID, "partner")].RowsOut != 10000 || len(rc.Rejected()) != 0 {
		t.Fatalf("webhook records %+v, rejected %v", recs, rc.Rejected())
	}
	// The other team's consumer: one event, valid, keyed by (batch, sink).
	out, err := client.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10,
		WaitTimeSeconds: 2, MessageAttributeNames: []string{"All"}})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("partner queue: %d messages, %v", len(out.Messages), err)
	}
	m := out.Messages[0]
	if err := deliver.ValidateEvent([]byte(*m.Body)); err != nil {
		t.Fatal(err)
	}
	var ev deliver.Event
	json.Unmarshal([]byte(*m.Body), &ev)
	if ev.BatchID != b.ID || ev.Feed != "main" || *m.MessageAttributes["IdempotencyKey"].StringValue != deliver.IdempotencyKey(b.ID, "events") {
		t.Fatalf("event %+v, attributes %v", ev, m.MessageAttributes)
	}
	// The presigned link in the event downloads the output.
	if got, err := testenv.Fetch(t.Context(), ev.OutputLink); err != nil || len(got) == 0 {
		t.Fatalf("the event's output link: %v", err)
	}

	g := s.waitBatch("input/gone/orders.csv", 2*time.Minute)
	g = s.waitDeliveries(g.ID, time.Minute)
	if d, _ := g.Delivery("partner"); g.State != sluice.StateCompleted || d.State != sluice.DeliveryFailed {
		t.Fatalf("gone: %s %+v", g.State, g.Deliveries)
	}
	if d, err := s.dlqs[pipeline.QueueDeliveries].Depth(t.Context()); err != nil || d.Visible+d.InFlight != 1 {
		t.Fatalf("deliveries-dlq: %+v %v, want the refused delivery's message", d, err)
	}
	s.mu.Lock()
	p := s.procs["deliverer"]
	s.mu.Unlock()
	s.stop("deliverer")
	checkLogs(t, "deliverer", p)
	if strings.Contains(p.stderr.String(), secret) {
		t.Fatal("the deliverer logged the webhook secret")
	}
}
