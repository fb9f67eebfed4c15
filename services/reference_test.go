package services_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/reference"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// waitState waits until the batch of key reaches a state other than
// splitting (its chunks are all queued).
func (s *stack) waitSplit(key string, within time.Duration) sluice.Batch {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		bs, err := s.ledger.ListBatches(s.t.Context(), sluice.BatchFilter{Key: key})
		if err != nil {
			s.t.Fatal(err)
		}
		for _, b := range bs {
			if b.State != sluice.StateSplitting {
				return b
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("%s was not split within %v", key, within)
	return sluice.Batch{}
}

// TestReferenceVersionsOnFourServices is issue 10's finding 1 on the
// emulators: a reference put under reference/ becomes the current version
// through the splitter; a batch created under R1 stays on R1 while R2 is
// loaded with its chunks still queued, and the file uploaded right after
// the load is enriched by R2. Both outputs are, byte for byte, what the
// embedded pipeline makes with that reference alone.
func TestReferenceVersionsOnFourServices(t *testing.T) {
	orders, r1 := testenv.SeedSample(t)
	r2 := testenv.OtherReference(t, r1)
	const chunkRows = 2000
	s := newStack(t, chunkRows)
	cfg, err := awsconfig.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cat := dynamoledger.New(cfg, dynamoledger.DefaultTables(s.prefix)).Catalog()

	// Only the splitter at first: the chunks of batch A wait in the queue.
	s.start("splitter")
	start := time.Now()
	s.send("ingest", s.put(r1, reference.Prefix+"financials.csv"))
	var v1 sluice.RefVersion
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if v1, err = cat.Current(t.Context()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reference put under reference/ never became current: %v", err)
		}
	}
	t.Logf("reference/ upload of %d rows current after %.1fs (splitter, emulated DynamoDB)", v1.Rows, time.Since(start).Seconds())
	if v1.Source != "financials.csv" || v1.Rows != 10000 {
		t.Fatalf("version from reference/ = %+v", v1)
	}

	s.send("ingest", s.upload(orders, "a.csv"))
	a := s.waitSplit("input/a.csv", time.Minute)
	if a.RefVersion != v1.ID {
		t.Fatalf("batch A pinned %q, want R1's %s", a.RefVersion, v1.ID)
	}
	// R2 with `sluice reference load --aws`, then at once file B.
	if out := s.cli("reference", "load", "--aws", r2); !strings.Contains(out, "new batches use it") {
		t.Fatalf("sluice reference load --aws:\n%s", out)
	}
	s.send("ingest", s.upload(orders, "b.csv"))
	v2, err := cat.Current(t.Context())
	if err != nil || v2.ID == v1.ID {
		t.Fatalf("after the CLI load Current = %v, %v", v2.ID, err)
	}
	for _, n := range []string{"worker", "merger", "notifier"} {
		s.start(n)
	}
	ba := s.waitBatch("input/a.csv", 2*time.Minute)
	bb := s.waitBatch("input/b.csv", 2*time.Minute)
	if bb.RefVersion != v2.ID {
		t.Fatalf("batch B pinned %q, want R2's %s", bb.RefVersion, v2.ID)
	}
	out1, errs1, _ := embeddedOutput(t, chunkRows, orders, r1)
	out2, errs2, _ := embeddedOutput(t, chunkRows, orders, r2)
	if bytes.Equal(out1, out2) {
		t.Fatal("R1 and R2 give the same output; the test could not tell them apart")
	}
	checkBatch(t, s, ba, out1, errs1, ba.RowsRejected)
	checkBatch(t, s, bb, out2, errs2, bb.RowsRejected)

	// R1 again, delivered twice: one new version (R2 is current, so R1's
	// content is new to it), and the redelivery is skipped as unchanged.
	again := s.put(r1, reference.Prefix+"financials.csv")
	s.send("ingest", again)
	s.send("ingest", again)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if cur, err := cat.Current(t.Context()); err == nil && cur.Hash == v1.Hash {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("R1 put again under reference/ never became current")
		}
	}
	time.Sleep(3 * time.Second) // the second delivery
	var listed []struct {
		ID      string `json:"id"`
		Current bool   `json:"current"`
		Done    int    `json:"finishedBatches"`
	}
	out := s.cli("reference", "list", "--aws", "--json")
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("sluice reference list --aws --json: %v\n%s", err, out)
	}
	if len(listed) != 3 || listed[0].ID != v1.ID || listed[0].Done != 1 || listed[1].ID != v2.ID || listed[1].Done != 1 || !listed[2].Current {
		t.Fatalf("versions after R1, R2, R1 twice = %+v; want R1 (batch A), R2 (batch B), R1 again current", listed)
	}
}

// cli runs the sluice binary against this stack.
func (s *stack) cli(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(bins["sluice"], args...)
	cmd.Env = append(os.Environ(), s.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("sluice %v: %v\n%s", args, err, out)
	}
	return string(out)
}
