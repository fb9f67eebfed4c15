package main

import (
	"fmt"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/pkg/pipeline"
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
