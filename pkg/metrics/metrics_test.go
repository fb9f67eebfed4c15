package metrics_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/metrics"
	"github.com/sluicehq/sluice/pkg/pipeline"
)

// TestEmbeddedRunFeedsMetrics runs a real batch and reads the counters back.
func TestEmbeddedRunFeedsMetrics(t *testing.T) {
	dir := t.TempDir()
	orders, fin, st, err := gen.WriteFiles(filepath.Join(dir, "in"), gen.Options{Rows: 5000, Seed: 3, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := embedded.Open(filepath.Join(dir, "data"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	m := metrics.New()
	eng.Metrics = m
	if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, _, err := eng.Process(ctx, orders, nil, nil); err != nil {
		t.Fatal(err)
	}
	eng.SampleOnce(ctx)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string, labels ...string) (float64, bool) {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		next:
			for _, mt := range mf.GetMetric() {
				for i := 0; i < len(labels); i += 2 {
					found := false
					for _, lp := range mt.GetLabel() {
						if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
							found = true
						}
					}
					if !found {
						continue next
					}
				}
				switch {
				case mt.Counter != nil:
					return mt.Counter.GetValue(), true
				case mt.Gauge != nil:
					return mt.Gauge.GetValue(), true
				case mt.Histogram != nil:
					return float64(mt.Histogram.GetSampleCount()), true
				}
			}
		}
		return 0, false
	}
	process, err := pipeline.StageOf("process")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sluice_rows_total", []string{"stage", "split", "result", "in"}, 5000},
		{"sluice_rows_total", []string{"stage", "process", "result", "rejected"}, float64(st.Bad)},
		{"sluice_rows_total", []string{"stage", "process", "result", "out"}, float64(5000 - st.Bad)},
		{"sluice_batches_ended_total", []string{"state", "completed"}, 1},
		{"sluice_batches", []string{"state", "completed"}, 1},
		{"sluice_batch_duration_seconds", nil, 1},
		{"sluice_messages_handled_total", []string{"stage", "process", "outcome", "succeeded"}, 1},
		{"sluice_queue_messages", []string{"queue", "chunks", "kind", "visible"}, 0},
		{"sluice_workers", []string{"stage", "process", "kind", "current"}, float64(eng.Handlers(process))},
	}
	for _, c := range checks {
		got, ok := value(c.name, c.labels...)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	for _, name := range []string{"sluice_handler_duration_seconds", "sluice_bytes_total", "sluice_rows_rejected_total", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := value(name); !ok {
			t.Errorf("no %s series", name)
		}
	}
}
