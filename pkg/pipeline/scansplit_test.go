package pipeline_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// TestScanRangeMessagesChecked: the fan-out sends one scan range per
// rangeBytes to the ingest queue; a scan-range message that does not fit
// its batch's input is refused for good (to the dead-letter queue at once),
// not retried.
func TestScanRangeMessagesChecked(t *testing.T) {
	dir := t.TempDir()
	orders, _, _, err := gen.WriteFiles(filepath.Join(dir, "in"), gen.Options{Rows: 2000, Seed: 3, RefRows: 100})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.ScanSplit = config.ScanSplit{MinBytes: 1, RangeBytes: 50_000}
	eng, err := embedded.Open(filepath.Join(dir, "data"), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := t.Context()
	sub, err := eng.Submit(ctx, orders)
	if err != nil {
		t.Fatal(err)
	}
	ingest := eng.Queues[pipeline.QueueIngest]
	sp := pipeline.Splitter{Deps: eng.Deps()}
	ms, err := ingest.Receive(ctx, 1, time.Minute, time.Second)
	if err != nil || len(ms) != 1 {
		t.Fatalf("ingest: %d, %v", len(ms), err)
	}
	if err := sp.Handle(ctx, ms[0]); err != nil {
		t.Fatal(err)
	}
	scans, err := ingest.Receive(ctx, 100, time.Minute, time.Second)
	if err != nil || len(scans) < 2 {
		t.Fatalf("%d scan ranges (%v); want several of 50 kB", len(scans), err)
	}
	var m sluice.ScanRange
	if err := sluice.Decode(scans[len(scans)-1].Body, &m); err != nil || m.Kind != sluice.KindScanRange || m.BatchID != sub.BatchID || m.Ranges != len(scans) {
		t.Fatalf("last scan range %+v, %v", m, err)
	}
	for _, bad := range []func(m *sluice.ScanRange){
		func(m *sluice.ScanRange) { m.Range = m.Ranges },
		func(m *sluice.ScanRange) { m.Length = m.Size },
		func(m *sluice.ScanRange) { m.Offset = 0 },
		func(m *sluice.ScanRange) { m.Input = "input_archive/other/x.csv" },
	} {
		b := m
		bad(&b)
		err := sp.Handle(ctx, sluice.Message{Body: sluice.Encode(b), ReceiveCount: 1})
		if !sluice.IsPermanent(err) {
			t.Errorf("%+v: %v, want a permanent error", b, err)
		}
	}
}
