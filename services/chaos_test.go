package services_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/chaos"
)

// TestChaosLocal kill -9s the four services (two workers) at random
// moments of a batch on the local backend and restarts them: the output
// and error report equal the embedded run's, every rejected row is there
// once, one email, nothing left in a queue. Two seeds, two different
// sequences of kills, one result.
func TestChaosLocal(t *testing.T) {
	var first chaos.Report
	for i, seed := range []int64{1, 7} {
		rep := runChaos(t, chaos.Options{Backend: "local", Rows: 60000, ChunkRows: 2000, Kills: 8, Seed: seed, Bins: bins, Workers: 2})
		if i == 0 {
			first = rep
			continue
		}
		if rep.OutputSHA != first.OutputSHA || rep.ErrorsSHA != first.ErrorsSHA || rep.Rejected != first.Rejected {
			t.Fatalf("seed %d gave another result than seed %d: output %s vs %s, errors %s vs %s", seed, first.Seed, rep.OutputSHA, first.OutputSHA, rep.ErrorsSHA, first.ErrorsSHA)
		}
	}
}

// TestChaosAWS does the same on the AWS emulators.
func TestChaosAWS(t *testing.T) {
	env := awstest.Shared(t)
	runChaos(t, chaos.Options{Backend: "aws", Rows: 20000, ChunkRows: 2000, Kills: 6, Seed: 3, Bins: bins, Workers: 2, AWS: env})
}

func runChaos(t *testing.T, o chaos.Options) chaos.Report {
	t.Helper()
	o.Out = &testLog{t: t}
	rep, err := chaos.Run(t.Context(), o)
	var table bytes.Buffer
	chaos.WriteTable(&table, rep)
	t.Logf("seed %d:\n%s", o.Seed, table.String())
	if err != nil {
		t.Fatal(err)
	}
	if rep.TotalKills() != o.Kills || rep.Restarts < o.Kills {
		t.Fatalf("%d kills and %d restarts, want %d of each", rep.TotalKills(), rep.Restarts, o.Kills)
	}
	if rep.KillsDuringBatch == 0 {
		t.Fatalf("no kill landed while the batch was running")
	}
	if !rep.OutputEqual || !rep.ErrorsEqual || rep.Emails != 1 || !rep.QueuesEmpty || rep.DeadLettered != 0 || rep.DuplicateLines != 0 {
		t.Fatalf("report: %+v", rep)
	}
	return rep
}

// testLog turns the driver's progress lines into test log lines.
type testLog struct {
	t   *testing.T
	mu  sync.Mutex
	buf []byte
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.t.Log(strings.TrimRight(string(l.buf[:i]), "\r"))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}
