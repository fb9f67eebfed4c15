package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/deliver"
	"github.com/sluicehq/sluice/pkg/deliver/delivertest"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
)

const cliSecret = "whsec_cli"

var secretEnv = []string{"SLUICE_TEST_PARTNER_SECRET=" + cliSecret}

func webhookConfigFile(t *testing.T, url string) string {
	p := filepath.Join(t.TempDir(), "deliver.yaml")
	cfg := fmt.Sprintf("deliver:\n  - {name: partner, type: webhook, url: %q, secretEnv: SLUICE_TEST_PARTNER_SECRET, retries: 3, backoff: 5ms, timeout: 5s}\n", url)
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDeliveryCrashAndRerun kills `sluice run` (SLUICE_CRASH_AT, as kill
// -9 would) at every delivery fault point, then reruns the same command:
// the rerun resumes the batch, the signature-checking receiver (failing
// its first try with 503) holds exactly one record, the sink is
// delivered, one email.
func TestDeliveryCrashAndRerun(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	for _, point := range pipeline.DeliveryPoints {
		t.Run(point, func(t *testing.T) {
			rc := delivertest.NewReceiver(t, cliSecret, 1)
			cfg, data := webhookConfigFile(t, rc.URL), t.TempDir()
			crashed := runCLI(t, append(secretEnv, "SLUICE_CRASH_AT="+point), "run", "--json", "--data", data, "--config", cfg, "--reference", fin, orders)
			if crashed.code != 86 {
				t.Fatalf("the crash hook did not fire: exit %d %s", crashed.code, crashed.stderr)
			}
			again := runCLI(t, secretEnv, "run", "--json", "--data", data, "--config", cfg, orders)
			if again.code != 0 || !again.Resumed || again.Status != "completed" {
				t.Fatalf("rerun: exit %d resumed %v %s %s", again.code, again.Resumed, again.Status, again.stderr)
			}
			if len(again.Deliveries) != 1 || again.Deliveries[0].State != sluice.DeliveryDelivered {
				t.Fatalf("deliveries %+v", again.Deliveries)
			}
			recs := rc.Records()
			if _, ok := recs[deliver.IdempotencyKey(again.BatchID, "partner")]; len(recs) != 1 || !ok {
				t.Fatalf("%d records, want one for batch %s", len(recs), again.BatchID)
			}
			if point == pipeline.PointDeliverAfterSend && rc.Accepted() < 2 {
				t.Fatalf("a crash after sending must repeat the delivery with the same key: %d accepted", rc.Accepted())
			}
			if len(rc.Rejected()) != 0 {
				t.Fatalf("signatures rejected: %v", rc.Rejected())
			}
			if n := emails(t, data); n != 1 {
				t.Fatalf("%d emails, want 1", n)
			}
		})
	}
}

// TestDeliverRetryCLI: a receiver that answers 400 leaves the batch
// completed with the sink delivery_failed (run --json, status, dlq list
// deliveries say why); after the receiver recovers, `sluice deliver
// retry` delivers it.
func TestDeliverRetryCLI(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	rc := delivertest.NewReceiver(t, cliSecret, 0)
	rc.Refuse(http.StatusBadRequest)
	cfg, data := webhookConfigFile(t, rc.URL), t.TempDir()
	r := runCLI(t, secretEnv, "run", "--json", "--data", data, "--config", cfg, "--reference", fin, orders)
	if r.code != 0 || r.Status != "completed" || len(r.Deliveries) != 1 || r.Deliveries[0].State != sluice.DeliveryFailed || !strings.Contains(r.Deliveries[0].Reason, "HTTP 400") {
		t.Fatalf("run: exit %d %s %+v %s", r.code, r.Status, r.Deliveries, r.stderr)
	}
	out, err := exec.Command(bin, "status", "--data", data, r.BatchID).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "deliver partner") || !strings.Contains(string(out), "delivery_failed (webhook") || !strings.Contains(string(out), "HTTP 400") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	statusListShows(t, data, r.BatchID, "1 failed")
	out, err = exec.Command(bin, "dlq", "list", "deliveries", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "HTTP 400") || !strings.Contains(string(out), r.BatchID) {
		t.Fatalf("dlq list deliveries: %v\n%s", err, out)
	}
	for args, want := range map[string]string{
		"deliver retry nosuchbatch":         `no batch "nosuchbatch"`,
		"deliver retry " + r.BatchID + " x": `no sink "x" (its sinks: partner)`,
		"deliver":                           "usage: sluice deliver retry",
	} {
		cmd := exec.Command(bin, append(strings.Fields(args), "--data", data, "--config", cfg)...)
		cmd.Env = append(os.Environ(), secretEnv...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Fatalf("%s: %v %s; want %q", args, err, out, want)
		}
	}
	// Without the configuration that has the sink: refused, nothing queued.
	out, err = exec.Command(bin, "deliver", "retry", r.BatchID, "--data", data).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `no sink "partner"`) || !strings.Contains(string(out), "--config") {
		t.Fatalf("retry without --config: %v %s", err, out)
	}
	rc.Refuse(0)
	cmd := exec.Command(bin, "deliver", "retry", r.BatchID, "partner", "--data", data, "--config", cfg)
	cmd.Env = append(os.Environ(), secretEnv...)
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "partner\tdelivered") {
		t.Fatalf("deliver retry: %v\n%s", err, out)
	}
	if recs := rc.Records(); len(recs) != 1 {
		t.Fatalf("%d records after the retry", len(recs))
	}
	statusListShows(t, data, r.BatchID, "1/1 delivered")
	out, _ = exec.Command(bin, "status", "--json", "--data", data, r.BatchID).CombinedOutput()
	if !strings.Contains(string(out), `"state":"delivered"`) || !strings.Contains(string(out), `"attempts":2`) {
		t.Fatalf("status --json after the retry: %s", out)
	}
}

// statusListShows: `sluice status` without a batch ID shows the batch's
// delivery summary in its DELIVERED column.
func statusListShows(t *testing.T, data, id, summary string) {
	t.Helper()
	out, err := exec.Command(bin, "status", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "DELIVERED") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, id) {
			if !strings.Contains(line, summary) {
				t.Fatalf("status: the line of %s has no %q:\n%s", id, summary, out)
			}
			return
		}
	}
	t.Fatalf("status: no line for %s:\n%s", id, out)
}
