package embedded_test

import (
	"bytes"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// forgeCRC32C returns 4 bytes that, appended to prefix, give the CRC-32C
// want. A CRC is affine over GF(2) in its input bits, so the 32 bits of
// the suffix are the solution of a 32×32 linear system.
func forgeCRC32C(prefix []byte, want uint32) [4]byte {
	crcOf := func(x uint32) uint32 {
		s := []byte{byte(x), byte(x >> 8), byte(x >> 16), byte(x >> 24)}
		return crc32.Update(crc32.Checksum(prefix, castagnoli), castagnoli, s)
	}
	base := crcOf(0)
	// Row i of the augmented matrix: bit i of every column, then bit i of the target.
	var cols [32]uint32
	for i := range cols {
		cols[i] = crcOf(1<<i) ^ base
	}
	target := want ^ base
	// Gauss-Jordan on columns: find x with XOR of cols[j] (x_j = 1) == target.
	type vec struct{ v, x uint32 }
	var basis [32]*vec // basis[b]: a combination whose highest set bit is b
	for j, c := range cols {
		e := &vec{c, 1 << j}
		for b := 31; b >= 0; b-- {
			if e.v>>b&1 == 0 {
				continue
			}
			if basis[b] == nil {
				basis[b] = e
				break
			}
			e.v ^= basis[b].v
			e.x ^= basis[b].x
		}
	}
	var x uint32
	for b := 31; b >= 0; b-- {
		if target>>b&1 == 1 {
			target ^= basis[b].v
			x ^= basis[b].x
		}
	}
	if crcOf(x) != want {
		panic("forgeCRC32C: no solution")
	}
	return [4]byte{byte(x), byte(x >> 8), byte(x >> 16), byte(x >> 24)}
}

// TestForgedCRCIsNotResumed: a different file with the same name, size and
// CRC-32C as one whose batch is unfinished is a new batch, not a "resume"
// that would hand it the first file's output (issue 10, finding 4).
func TestForgedCRCIsNotResumed(t *testing.T) {
	const header = "uuid,Country,Item Type\n"
	a := []byte(header + "0b9a2a44-0ad4-4bd6-8c57-6a2e8bd1cf6e,France,Fruits\nabcd")
	bBody := []byte(header + "0b9a2a44-0ad4-4bd6-8c57-6a2e8bd1cf6e,Brazil,Fruits\n")
	forged := forgeCRC32C(bBody, crc32.Checksum(a, castagnoli))
	b := append(bBody, forged[:]...)
	if len(a) != len(b) || crc32.Checksum(a, castagnoli) != crc32.Checksum(b, castagnoli) || bytes.Equal(a, b) {
		t.Fatal("the forged file is not a CRC-32C collision of the same size")
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	pa, pb := filepath.Join(dirA, "orders.csv"), filepath.Join(dirB, "orders.csv")
	if err := os.WriteFile(pa, a, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pb, b, 0o644); err != nil {
		t.Fatal(err)
	}
	eng, err := embedded.Open(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := t.Context()
	subA, err := eng.Submit(ctx, pa)
	if err != nil {
		t.Fatal(err)
	}
	// The splitter creates A's batch and dies: A's batch is unfinished.
	d := eng.Deps()
	d.Fault = func(p string) error {
		if p == pipeline.PointSplitAfterCreate {
			return errors.New("crash")
		}
		return nil
	}
	info, err := eng.Blobs.Stat(ctx, subA.Key)
	if err != nil {
		t.Fatal(err)
	}
	ev := sluice.ObjectCreated{Bucket: eng.Blobs.Bucket(), Key: subA.Key, Size: info.Size, ETag: info.ETag, Sequence: "1"}
	if err := (pipeline.Splitter{Deps: d}).Split(ctx, ev, false); err == nil {
		t.Fatal("the injected crash did not stop the split")
	}
	if bA, err := eng.DB.Ledger().GetBatch(ctx, subA.BatchID); err != nil || bA.State.Terminal() {
		t.Fatalf("batch of A: %+v %v, want an unfinished batch", bA, err)
	}
	subB, err := eng.Submit(ctx, pb)
	if err != nil {
		t.Fatal(err)
	}
	if subB.Resumed || subB.BatchID == subA.BatchID {
		t.Fatalf("a different file with A's CRC-32C was taken for A: %+v (A: %+v)", subB, subA)
	}
}
