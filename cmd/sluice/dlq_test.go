package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/sqsqueue"
)

// The same `sluice dlq` path on SQS (the emulator) as on the local database
// (TestDLQListAndRedriveLocal): list shows the reason, redrive moves it back.
func TestDLQListAndRedriveAWS(t *testing.T) {
	env := awstest.New(t, awstest.SQS)
	cfg := env.Config(awstest.SQS)
	prefix := fmt.Sprintf("clidlq%d-", time.Now().UnixNano()%1e9)
	for _, q := range stageQueues {
		if _, _, err := sqsqueue.Ensure(t.Context(), cfg, prefix+q, sqsqueue.EnsureOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	qurl, err := sqsqueue.URLOf(t.Context(), cfg, prefix+"merge")
	if err != nil {
		t.Fatal(err)
	}
	dlqURL, err := sqsqueue.URLOf(t.Context(), cfg, prefix+"merge-dlq")
	if err != nil {
		t.Fatal(err)
	}
	q := sqsqueue.New(cfg, qurl, sqsqueue.WithDeadLetterURL(dlqURL))
	if err := q.Send(t.Context(), []byte(`{"v":99,"batch":"b1"}`)); err != nil {
		t.Fatal(err)
	}
	ms, err := q.Receive(t.Context(), 1, time.Minute, 2*time.Second)
	if err != nil || len(ms) != 1 {
		t.Fatalf("Receive: %d, %v", len(ms), err)
	}
	if err := q.DeadLetter(t.Context(), ms[0], "unknown message version 99"); err != nil {
		t.Fatal(err)
	}
	awsEnv := []string{
		"AWS_ENDPOINT_URL_SQS=" + env.Endpoint(awstest.SQS), "AWS_REGION=" + awstest.Region,
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_PROFILE=", "AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null", "SLUICE_QUEUE_PREFIX=" + prefix,
	}
	list := runCLIOut(t, awsEnv, "dlq", "list", "merge", "--aws")
	if !strings.Contains(list, "unknown message version 99") || !strings.Contains(list, `{"v":99,"batch":"b1"}`) {
		t.Fatalf("dlq list --aws:\n%s", list)
	}
	if out := runCLIOut(t, awsEnv, "dlq", "redrive", "merge", "--aws"); !strings.Contains(out, "moved 1 message(s) from merge-dlq back to merge") {
		t.Fatalf("dlq redrive --aws: %s", out)
	}
	if out := runCLIOut(t, awsEnv, "dlq", "list", "merge", "--aws"); !strings.Contains(out, "merge-dlq is empty") {
		t.Fatalf("after redrive: %s", out)
	}
	back, err := q.Receive(t.Context(), 1, time.Minute, 2*time.Second)
	if err != nil || len(back) != 1 || string(back[0].Body) != `{"v":99,"batch":"b1"}` {
		t.Fatalf("redriven message: %+v, %v", back, err)
	}
	if r := runCLI(t, awsEnv, "dlq", "list", "merge", "--aws", "--limit", "0"); r.code != 2 {
		t.Fatalf("--limit 0: exit %d, want 2 (usage)", r.code)
	}
	// A queue that was never provisioned is a clear error, not an empty list.
	if r := runCLI(t, append(awsEnv, "SLUICE_QUEUE_PREFIX=nosuch-"), "dlq", "list", "merge", "--aws"); r.code == 0 || !strings.Contains(r.stderr, "nosuch-merge") {
		t.Fatalf("unprovisioned queue: exit %d, stderr %s", r.code, r.stderr)
	}
}

// runCLIOut runs the CLI, fails the test unless it exits 0, and returns
// its standard output.
func runCLIOut(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return string(out)
}
