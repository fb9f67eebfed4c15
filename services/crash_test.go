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
	os.WriteFile(scanCfg, []byte("chunkRows: 4000\nlimits: {maxFileBytes: 1073741824}\nscanSplit: {minBytes: 1, rangeBytes: 200000}\n"), 0o644)
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

// TestCrashBetweenCounterWritesAWS kills the worker inside the DynamoDB
// ledger's sharded counter (fault.PointLedgerAfterShard): the write that
// completes the chunks' shard is done, the batch item is not told. The
// redelivered chunk must finish that step: the outputs are the embedded
// pipeline's, and the batch is merged exactly once.
func TestCrashBetweenCounterWritesAWS(t *testing.T) {
	if testing.Short() {
		t.Skip("a stack of services")
	}
	orders, fin := testenv.SeedSample(t)
	const chunkRows = 4000
	s := newStack(t, chunkRows)
	loadReference(t, s, fin)
	s.env = append(s.env, "SLUICE_VISIBILITY=3s")
	s.startAll()
	wantOut, wantErrs, _ := embeddedOutput(t, chunkRows, orders, fin)
	s.stop("worker")
	// 3 chunks of 4,000 rows, each in a shard of its own (lanes): the
	// worker passes the point once per shard and dies at the last.
	p := s.start("worker", "SLUICE_CRASH_AT="+fault.PointLedgerAfterShard+"@3")
	s.send("ingest", s.upload(orders, "shard-crash.csv"))
	select {
	case <-p.done:
	case <-time.After(90 * time.Second):
		t.Fatal("the worker never reached the point")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != fault.CrashExitCode {
		t.Fatalf("the worker exited with %d, want %d:\n%s", code, fault.CrashExitCode, tail(p.stderr.String(), 2000))
	}
	s.mu.Lock()
	delete(s.procs, "worker")
	s.mu.Unlock()
	// Every chunk is counted in its shard, and no merge was asked for.
	s.waitChunks("input/shard-crash.csv", time.Minute)
	if bs, _ := s.ledger.ListBatches(t.Context(), sluice.BatchFilter{Key: "input/shard-crash.csv"}); len(bs) != 1 || bs[0].State == sluice.StateMerging || !bs[0].MergedAt.IsZero() {
		t.Fatalf("before the worker is back: %+v", bs)
	}
	s.start("worker")
	b := s.waitBatch("input/shard-crash.csv", 2*time.Minute)
	checkBatch(t, s, b, wantOut, wantErrs, 0)
	s.mu.Lock()
	merger := s.procs["merger"]
	s.mu.Unlock()
	var merged int
	for line := range strings.Lines(merger.stderr.String()) {
		if strings.Contains(line, b.ID) && (strings.Contains(line, `"msg":"merged"`) || strings.Contains(line, "merge message for a finished batch")) {
			merged++
		}
	}
	if merged != 1 {
		t.Fatalf("the merger handled %d merge messages for the batch, want exactly 1", merged)
	}
}
