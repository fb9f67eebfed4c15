package services_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/gen"
)

// TestHugeObjectSplitByScanTasks: on the emulators, an object over
// scanSplit.minBytes is split by scan tasks reading it with range GETs. The
// splitter service, three messages at once, fans the object out to its own
// queue, counts each range in DynamoDB and stitches; the output, the error
// report and the rejects equal the embedded one-stream run's.
func TestHugeObjectSplitByScanTasks(t *testing.T) {
	orders, fin, st, err := gen.WriteFiles(t.TempDir(), gen.Options{Rows: 12000, Seed: 11, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	const chunkRows = 2000
	s := newStack(t, chunkRows)
	os.WriteFile(s.cfgFile, []byte("chunkRows: 2000\nlimits: {maxFileBytes: 1073741824}\nscanSplit: {minBytes: 100000, rangeBytes: 65536}\n"), 0o644)
	loadReference(t, s, fin)
	sp := s.start("splitter", "SLUICE_CONCURRENCY=3")
	for _, n := range []string{"worker", "merger", "notifier"} {
		s.start(n)
	}
	s.send("ingest", s.upload(orders, "huge.csv"))
	b := s.waitBatch("input/huge.csv", 2*time.Minute)
	wantOut, wantErrs, one := embeddedOutput(t, chunkRows, orders, fin)
	checkBatch(t, s, b, wantOut, wantErrs, st.Bad)
	checkOneMail(t, s, b, wantOut)
	if b.RowsIn != one.RowsIn || b.TotalChunks < one.TotalChunks {
		t.Fatalf("%d rows in %d chunks; the one-stream split made %d rows in %d chunks", b.RowsIn, b.TotalChunks, one.RowsIn, one.TotalChunks)
	}
	s.stop("splitter")
	logs := sp.stderr.String()
	if !strings.Contains(logs, "split fanned out to scan tasks") || strings.Count(logs, "scan ranges stitched") != 1 {
		t.Fatalf("the splitter did not fan out and stitch once:\n%s", tail(logs, 3000))
	}
}
