package services_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/fault"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// stageOf names the service that reaches a fault point.
func stageOf(point string) string {
	switch {
	case strings.HasPrefix(point, "split."), strings.HasPrefix(point, "scan."):
		return "splitter"
	case strings.HasPrefix(point, "work."):
		return "worker"
	case strings.HasPrefix(point, "merge."):
		return "merger"
	}
	return "notifier"
}

// TestCrashAtEveryPointAWS stops a service as kill -9 would at each fault
// point of its stage (SLUICE_CRASH_AT), restarts it, and expects the batch
// to complete with the output the embedded pipeline gives. Besides
// recovery, this makes the services take their retry paths (a split
// retried after the archive reads input_archive/), so the AWS calls those
// paths make are observed for the least-privilege check.
func TestCrashAtEveryPointAWS(t *testing.T) {
	if testing.Short() {
		t.Skip("a batch per fault point")
	}
	orders, fin := testenv.SeedSample(t)
	const chunkRows = 4000
	s := newStack(t, chunkRows)
	loadReference(t, s, fin)
	// A crashed service's message is back after the visibility timeout.
	s.env = append(s.env, "SLUICE_VISIBILITY=3s")
	s.startAll()
	wantOut, wantErrs, _ := embeddedOutput(t, chunkRows, orders, fin)
	// The scan split's points are reached by a splitter whose
	// configuration fans every file out to scan tasks of 200 kB.
	scanCfg := filepath.Join(t.TempDir(), "scan.yaml")
	os.WriteFile(scanCfg, []byte("chunkRows: 4000\nscanSplit: {minBytes: 1, rangeBytes: 200000}\n"), 0o644)
	for i, point := range pipeline.Points {
		stage := stageOf(point)
		var extra []string
		if point == pipeline.PointSplitAfterScanSend || strings.HasPrefix(point, "scan.") {
			extra = []string{"SLUICE_CONFIG=" + scanCfg}
		}
		name := fmt.Sprintf("crash-%02d.csv", i)
		s.stop(stage)
		// A split crash point is retried with a later stage held back,
		// so the retry finds the batch still splitting and takes its
		// recovery path instead of finding it finished: after the archive
		// it reads input_archive/; after the total, with every chunk done
		// meanwhile, it sends the merge message itself.
		hold := "worker"
		if point == pipeline.PointSplitAfterTotal {
			hold = "merger"
		}
		if stage == "splitter" {
			s.stop(hold)
		}
		p := s.start(stage, append(extra, "SLUICE_CRASH_AT="+point)...)
		s.send("ingest", s.upload(orders, name))
		select {
		case <-p.done:
		case <-time.After(90 * time.Second):
			t.Fatalf("%s: %s never reached the point", point, stage)
		}
		if code := p.cmd.ProcessState.ExitCode(); code != fault.CrashExitCode {
			t.Fatalf("%s: %s exited with %d, want %d:\n%s", point, stage, code, fault.CrashExitCode, tail(p.stderr.String(), 2000))
		}
		checkLogs(t, stage, p)
		s.mu.Lock()
		delete(s.procs, stage)
		s.mu.Unlock()
		if point == pipeline.PointSplitAfterTotal {
			s.waitChunks("input/"+name, time.Minute)
		}
		s.start(stage, extra...)
		if stage == "splitter" {
			s.waitSplit("input/"+name, time.Minute)
			s.start(hold)
		}
		b := s.waitBatch("input/"+name, 2*time.Minute)
		if b.State != sluice.StateCompleted {
			t.Fatalf("%s: batch %s %s (%s)", point, b.ID, b.State, b.Reason)
		}
		checkBatch(t, s, b, wantOut, wantErrs, 0)
	}
}

// waitChunks waits until every chunk of the batch of key is done.
func (s *stack) waitChunks(key string, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		bs, err := s.ledger.ListBatches(s.t.Context(), sluice.BatchFilter{Key: key})
		if err != nil {
			s.t.Fatal(err)
		}
		if len(bs) == 1 && bs[0].TotalChunks > 0 && bs[0].DoneChunks == bs[0].TotalChunks {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("the chunks of %s are not all done after %v", key, within)
}
