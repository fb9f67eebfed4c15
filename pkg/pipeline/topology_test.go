package pipeline_test

import (
	"slices"
	"testing"

	"github.com/sluicehq/sluice/pkg/pipeline"
)

// TestTopologyIsConsistent: names unique, every queue sent to is a stage
// queue, sends only go downstream, and StageOf finds a stage by either
// name.
func TestTopologyIsConsistent(t *testing.T) {
	seen := map[string]bool{}
	for i, s := range pipeline.Topology {
		for _, n := range []string{s.Name, s.Service, "queue:" + s.Queue} {
			if seen[n] {
				t.Errorf("%q appears twice", n)
			}
			seen[n] = true
		}
		if s.New == nil || s.Visibility <= 0 {
			t.Errorf("%s: no handler constructor or visibility", s.Name)
		}
		for _, q := range s.Sends {
			j := slices.Index(pipeline.Queues(), q)
			// Its own queue is allowed: the split fans a huge input out
			// to other split tasks (scansplit.go). Upstream is not.
			if j < i {
				t.Errorf("%s sends to %q, which is no stage queue downstream of it or its own", s.Name, q)
			}
		}
		for _, n := range []string{s.Name, s.Service} {
			if got, err := pipeline.StageOf(n); err != nil || got.Queue != s.Queue {
				t.Errorf("StageOf(%q) = %s, %v", n, got.Queue, err)
			}
		}
	}
	if _, err := pipeline.StageOf("ingest"); err == nil {
		t.Error("StageOf takes a queue name for a stage")
	}
}
