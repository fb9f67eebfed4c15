package services_test

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/gen"
)

// TestMergeCopiesPartsOnS3 runs the services on s3rver, an S3 that does
// UploadPartCopy and (through awstest) refuses parts under 5 MiB, with
// chunks big enough for their parts to be copied: the merger must assemble
// the output on the server, byte for byte what the embedded pipeline
// writes.
func TestMergeCopiesPartsOnS3(t *testing.T) {
	dir := t.TempDir()
	// 3 chunks of 50,000 rows: output parts of ~5.8 MB.
	orders, fin, st, err := gen.WriteFiles(dir, gen.Options{Rows: 150000, RefRows: 5000, Seed: 13, BadRate: 0.03})
	if err != nil {
		t.Fatal(err)
	}
	const chunkRows = 50000
	s := newStackOn(t, chunkRows, awstest.S3Copy)
	loadReference(t, s, fin)
	for _, n := range []string{"splitter", "worker", "merger", "notifier"} {
		s.start(n)
	}
	s.send("ingest", s.upload(orders, "orders.csv"))
	b := s.waitBatch("input/orders.csv", 4*time.Minute)
	wantOut, wantErrs, _ := embeddedOutput(t, chunkRows, orders, fin)
	checkBatch(t, s, b, wantOut, wantErrs, st.Bad)
	if b.TotalChunks != 3 {
		t.Fatalf("chunks %d, want 3", b.TotalChunks)
	}
	if s.aws.External() {
		return
	}
	// The header's part takes the first part whole (the rest of it would
	// be under 5 MiB); the second and third parts are copied.
	ops := s.aws.S3Traffic(s.bucket)
	if c := ops["UploadPartCopy"]; c.Calls != 2 {
		t.Errorf("UploadPartCopy %+v, want the second and third parts copied (%v)", c, ops)
	}
}
