package console_test

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/console"
	"github.com/sluicehq/sluice/pkg/deliver/delivertest"
	"github.com/sluicehq/sluice/pkg/gen"
)

// TestBatchShowsDeliveries: the API and the batch page show each sink's
// state, and a refused one's reason and the command that retries it.
func TestBatchShowsDeliveries(t *testing.T) {
	dir := t.TempDir()
	orders, fin, _, err := gen.WriteFiles(dir, gen.Options{Rows: 500, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	ok := delivertest.NewReceiver(t, "s3cret", 0)
	refusing := delivertest.NewReceiver(t, "s3cret", 0)
	refusing.Refuse(http.StatusGone)
	t.Setenv("SLUICE_TEST_CONSOLE_SECRET", "s3cret")
	cfg := config.Default()
	for name, u := range map[string]string{"good": ok.URL, "gone": refusing.URL} {
		cfg.Deliver = append(cfg.Deliver, config.Sink{Name: name, Type: "webhook", URL: u, SecretEnv: "SLUICE_TEST_CONSOLE_SECRET", Backoff: config.Duration{Duration: time.Millisecond}})
	}
	eng := newEngine(t, cfg, true)
	if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
		t.Fatal(err)
	}
	f := serve(t, eng, console.Options{})
	content, _ := os.ReadFile(orders)
	up := upload(t, f.url, "orders.csv", content)
	var v console.BatchView
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		v = waitDone(t, f.url, up.BatchID)
		if len(v.Deliveries) == 2 && v.Deliveries[0].State != "pending" && v.Deliveries[1].State != "pending" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries still pending: %+v", v.Deliveries)
		}
	}
	states := map[string]console.DeliveryView{}
	for _, d := range v.Deliveries {
		states[d.Sink] = d
	}
	if states["good"].State != "delivered" || states["gone"].State != "delivery_failed" || !strings.Contains(states["gone"].Reason, "HTTP 410") {
		t.Fatalf("API deliveries %+v", v.Deliveries)
	}
	page := get(t, f.url+"/batches/"+up.BatchID)
	for _, want := range []string{`id="deliveries"`, "delivery_failed", "HTTP 410", "sluice deliver retry " + up.BatchID + " gone", "delivered"} {
		if !strings.Contains(string(page.body), want) {
			t.Fatalf("the batch page lacks %q", want)
		}
	}
	// The list, as JSON and as the page: a compact summary per batch.
	if v.DeliverySummary != "1/2 delivered, 1 failed" {
		t.Fatalf("the batch's delivery summary %q", v.DeliverySummary)
	}
	var bl console.BatchList
	if err := json.Unmarshal(get(t, f.url+"/api/batches").body, &bl); err != nil || len(bl.Batches) != 1 || bl.Batches[0].DeliverySummary != "1/2 delivered, 1 failed" {
		t.Fatalf("the list API: %+v %v", bl.Batches, err)
	}
	list := string(get(t, f.url+"/").body)
	if !strings.Contains(list, "<th>Delivered</th>") || !strings.Contains(list, `class="delivered">1/2 delivered, 1 failed</td>`) {
		t.Fatalf("the list page lacks the delivery summary:\n%s", list)
	}
}
