package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// TestResumeNeverForksInParallel: a run that died right after sending its
// email is rerun, in several loops at once (contention widens any race).
// The rerun must resume the same batch, never start a second one: it once
// started the stages before submitting, so the redelivered notify message
// could finish the old batch first and Submit then made a new batch and a
// second email (issue 10, finding 5). Bounded: a few seconds.
func TestResumeNeverForksInParallel(t *testing.T) {
	orders, fin, cfg, _ := genCase(t, 20000, 5000)
	const loops, rounds = 3, 3
	var wg sync.WaitGroup
	errs := make(chan error, loops*rounds)
	for l := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				data := t.TempDir()
				crashed := runCLI(t, []string{"SLUICE_CRASH_AT=" + pipeline.PointNotifyAfterSend}, "run", "--json", "--data", data, "--config", cfg, "--reference", fin, orders)
				if crashed.code != 86 {
					errs <- fmt.Errorf("loop %d round %d: the crash hook did not fire: exit %d %s", l, r, crashed.code, crashed.stderr)
					continue
				}
				again := runCLI(t, nil, "run", "--json", "--data", data, "--config", cfg, orders)
				switch {
				case again.code != 0:
					errs <- fmt.Errorf("loop %d round %d: rerun exit %d %s", l, r, again.code, again.stderr)
				case !again.Resumed:
					errs <- fmt.Errorf("loop %d round %d: the rerun started batch %s instead of resuming", l, r, again.BatchID)
				case emails(t, data) != 1:
					errs <- fmt.Errorf("loop %d round %d: %d emails, want 1", l, r, emails(t, data))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestStatusNamesPathsAPersonCanFollow: `status BATCH` gives the archived
// input, the output and the error report as files that exist, not as bare
// bucket keys (issue 11 item 9; issue 10 finding 3's archive per batch).
func TestStatusNamesPathsAPersonCanFollow(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	data := t.TempDir()
	bad := filepath.Join(t.TempDir(), filepath.Base(orders)) // the same name, other content
	os.WriteFile(bad, []byte("a;b;c\n1;2;3\n"), 0o644)
	if r := runCLI(t, nil, "run", "--json", "--data", data, "--reference", fin, bad); r.code != 1 {
		t.Fatalf("bad file: exit %d %s", r.code, r.stderr)
	}
	good := runCLI(t, nil, "run", "--json", "--data", data, orders)
	if good.code != 0 {
		t.Fatalf("exit %d %s", good.code, good.stderr)
	}
	out, err := exec.Command(bin, "status", "--json", "--data", data).Output()
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		ID    string `json:"batchId"`
		State string `json:"state"`
	}
	if err := json.Unmarshal(out, &list); err != nil || len(list) != 2 {
		t.Fatalf("status list: %v %s", err, out)
	}
	archives := map[string]bool{}
	for _, b := range list {
		text, err := exec.Command(bin, "status", "--data", data, b.ID).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"archive"}
		if b.State == "completed" {
			want = append(want, "output", "errors")
		}
		for _, field := range want {
			var p string
			for _, l := range strings.Split(string(text), "\n") {
				if f := strings.Fields(l); len(f) == 2 && f[0] == field {
					p = f[1]
				}
			}
			if !filepath.IsAbs(p) || !strings.HasPrefix(p, data) {
				t.Fatalf("status %s: %s is %q, want a path under %s:\n%s", b.ID, field, p, data, text)
			}
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("status %s: %v", b.ID, err)
			}
			if field == "archive" {
				archives[p] = true
			}
		}
	}
	if len(archives) != 2 {
		t.Fatalf("two files of one name share an archive: %v", archives)
	}
}

// TestRunFlagsRejectsThatDominate: a file that is mostly rejected is
// flagged in `run --json` without a limit, and fails with
// limits.maxRejectRate (issue 10, finding 11).
func TestRunFlagsRejectsThatDominate(t *testing.T) {
	in := filepath.Join("..", "..", "testdata", "bad", "mostly_rejected.csv")
	ref := filepath.Join("..", "..", "testdata", "bad", "ref", "reference.csv")
	r := runCLI(t, nil, "run", "--json", "--data", t.TempDir(), "--reference", ref, in)
	if r.code != 0 || r.Status != "completed" || !r.RejectsDominate || r.RejectRate != 0.75 {
		t.Fatalf("no limit: exit %d %+v %s", r.code, r.runResult, r.stderr)
	}
	cfg := filepath.Join(t.TempDir(), "cfg.yaml")
	os.WriteFile(cfg, []byte("limits:\n  maxRejectRate: 0.5\n"), 0o644)
	cmd := exec.Command(bin, "run", "--json", "--data", t.TempDir(), "--config", cfg, "--reference", ref, in)
	out, _ := cmd.Output()
	var res runResult
	if err := json.Unmarshal(out, &res); err != nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("limit 0.5: exit %d %v %s", cmd.ProcessState.ExitCode(), err, out)
	}
	if res.Status != "failed" || !strings.Contains(res.Reason, "75% of rows were rejected (limit 50%") || res.Errors == "" || res.Archive == "" {
		t.Fatalf("limit 0.5: %+v", res)
	}
}
