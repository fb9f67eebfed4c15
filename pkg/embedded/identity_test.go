package embedded_test

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
	"github.com/sluicehq/sluice/pkg/wire"
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
	if bA, err := eng.Ledger.GetBatch(ctx, subA.BatchID); err != nil || bA.State.Terminal() {
		t.Fatalf("batch of A: %+v %v, want an unfinished batch", bA, err)
	}
	// B is not A: it must not resume A's batch, and while A's batch still
	// reads input/orders.csv it must not replace it either.
	subB, err := eng.Submit(ctx, pb)
	if subB.Resumed || subB.BatchID == subA.BatchID {
		t.Fatalf("a different file with A's CRC-32C was taken for A: %+v (A: %+v)", subB, subA)
	}
	if !errors.Is(err, embedded.ErrBusy) {
		t.Fatalf("Submit(B) = %+v, %v; want ErrBusy while A's batch reads input/", subB, err)
	}
	if got, _ := os.ReadFile(eng.Path(subA.Key)); !bytes.Equal(got, a) {
		t.Fatal("A's input was replaced under its unfinished batch")
	}
}

// TestLongNamesEndToEnd: any name S3 accepts works. The 245-byte name gave
// chunk keys over the 255-byte file-name limit and stalled in "splitting";
// a 1,018-byte name (a 1,024-byte key under input/) cannot even be one
// local path element. Artefact keys come from the batch ID and chunk
// number; the archive and input keys use a bounded form of the name; the
// batch keeps the name itself (issue 10, finding 6).
func TestLongNamesEndToEnd(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	eng, err := embedded.Open(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, _, err := eng.LoadReference(ctx, fin, nil); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- eng.Run(runCtx) }()
	defer func() { stop(); <-done }()
	for _, n := range []int{245, 250, 1018} {
		name := strings.Repeat("é", (n-4)/2) + strings.Repeat("x", (n-4)%2) + ".csv"
		if len(name) != n {
			t.Fatalf("name of %d bytes, want %d", len(name), n)
		}
		sub, err := eng.SubmitAs(ctx, orders, name)
		if err != nil {
			t.Fatalf("%d-byte name: %v", n, err)
		}
		b, err := eng.Wait(ctx, sub.BatchID, nil)
		if err != nil {
			t.Fatalf("%d-byte name: %v", n, err)
		}
		if b.State != sluice.StateCompleted || b.RowsOut != 10000 || b.Name != name {
			t.Fatalf("%d-byte name: %s %q, %d rows out, name kept: %v", n, b.State, b.Reason, b.RowsOut, b.Name == name)
		}
		for _, k := range []string{b.OutputKey, b.ErrorsKey, b.ManifestKey, pipeline.ArchiveKey(b), pipeline.ChunkKey(b, 0), b.Key} {
			if len(k) > 200 {
				t.Errorf("key of %d bytes: %q", len(k), k)
			}
			if _, err := os.Stat(eng.Path(k)); err != nil && k != b.Key && k != pipeline.ChunkKey(b, 0) {
				t.Errorf("%d-byte name: %v", n, err)
			}
		}
		if got := pipeline.DownloadName(b, b.ErrorsKey); got != strings.TrimSuffix(name, ".csv")+".errors.csv" {
			t.Errorf("download name %q", got)
		}
	}
}

// TestArchiveIsPerBatch: two files of one name, each failing, keep their
// own archived input, and each failure email names its own (issue 10,
// finding 3: the second overwrote input_archive/<name>, and the first
// email pointed at the wrong bytes).
func TestArchiveIsPerBatch(t *testing.T) {
	eng, err := embedded.Open(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	contents := []string{"a;b\n1;2\n", "x;y;z\n3;4;5\n"}
	var batches []sluice.Batch
	for _, c := range contents {
		in := filepath.Join(t.TempDir(), "orders.csv")
		if err := os.WriteFile(in, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		_, b, err := eng.Process(t.Context(), in, nil, nil)
		if err != nil || b.State != sluice.StateFailed {
			t.Fatalf("%s %v", b.State, err)
		}
		batches = append(batches, b)
	}
	for i, b := range batches {
		p := eng.Path(pipeline.ArchiveKey(b))
		if got, err := os.ReadFile(p); err != nil || string(got) != contents[i] {
			t.Fatalf("batch %d's archive %s holds %q (%v), want its own input %q", i, p, got, err, contents[i])
		}
		_, text := readEmail(t, filepath.Join(eng.Dir, wire.OutboxDir, "sluice-batch-"+b.ID+".eml"))
		if !strings.Contains(text, p) {
			t.Fatalf("batch %d's email does not name its archive %s:\n%s", i, p, text)
		}
	}
}
