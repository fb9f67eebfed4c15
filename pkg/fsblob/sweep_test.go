package fsblob_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/fsblob"
)

// failingReader yields some bytes, then fails, as a killed upload would.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("client went away")
	}
	r.n--
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// TestSweepTempRemovesWhatDeadWritesLeft: the temporary files of writes
// whose process died are removed, objects and young temp files are not.
func TestSweepTempRemovesWhatDeadWritesLeft(t *testing.T) {
	dir := t.TempDir()
	s, err := fsblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), "b1/output/completed/out.csv", strings.NewReader("a,b\n")); err != nil {
		t.Fatal(err)
	}
	// What a killed Put and a killed reference load leave behind.
	old := time.Now().Add(-2 * time.Hour)
	dead := []string{
		filepath.Join(dir, "b1", "to_process", fsblob.TempPrefix+"123"),
		filepath.Join(dir, "input", fsblob.TempPrefix+"456"),
		filepath.Join(dir, ".refdata-789"),
	}
	for _, p := range dead {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, make([]byte, 1000), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, old, old)
	}
	young := filepath.Join(dir, "input", fsblob.TempPrefix+"live")
	os.WriteFile(young, []byte("being written"), 0o644)

	got, err := fsblob.SweepTemp(dir, []string{fsblob.TempPrefix, ".refdata-"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Paths) != 3 || got.Bytes != 3000 {
		t.Fatalf("swept %v (%d bytes), want the 3 dead temp files", got.Paths, got.Bytes)
	}
	for _, p := range dead {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived", p)
		}
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("a temp file younger than the period was removed")
	}
	if _, err := s.Stat(context.Background(), "b1/output/completed/out.csv"); err != nil {
		t.Errorf("an object was removed: %v", err)
	}
	// With the directory's lock held, every temp file is dead.
	if got, _ := fsblob.SweepTemp(dir, []string{fsblob.TempPrefix}, 0); len(got.Paths) != 1 {
		t.Errorf("sweep with 0 removed %v", got.Paths)
	}
}

// TestFailedPutLeavesNoTempFile: a write that fails half-way leaves nothing.
func TestFailedPutLeavesNoTempFile(t *testing.T) {
	dir := t.TempDir()
	s, _ := fsblob.New(dir)
	if _, err := s.Put(context.Background(), "input/big.csv", &failingReader{n: 10}); err == nil {
		t.Fatal("Put of a failing reader succeeded")
	}
	if got, _ := fsblob.SweepTemp(dir, []string{fsblob.TempPrefix}, 0); len(got.Paths) != 0 {
		t.Fatalf("a failed Put left %v", got.Paths)
	}
}

// TestSweepDeadSparesThisProcessWrites: SweepDead, which runs while this
// process writes, removes what another (dead) process's writes left, of
// any age, and not the file of a Put still under way here, which then
// completes.
func TestSweepDeadSparesThisProcessWrites(t *testing.T) {
	dir := t.TempDir()
	s, err := fsblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(dir, "b1", "output", "parts", fsblob.TempPrefix+"0badc0de-123")
	os.MkdirAll(filepath.Dir(dead), 0o755)
	if err := os.WriteFile(dead, make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	put := make(chan error, 1)
	go func() {
		_, err := s.Put(t.Context(), "input/live.csv", pr)
		put <- err
	}()
	if _, err := pw.Write([]byte("a,b\n")); err != nil { // the Put's file exists now
		t.Fatal(err)
	}
	got, err := fsblob.SweepDead(t.Context(), dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Paths) != 1 || got.Paths[0] != dead {
		t.Fatalf("SweepDead removed %v, want only %s", got.Paths, dead)
	}
	pw.Write([]byte("1,2\n"))
	pw.Close()
	if err := <-put; err != nil {
		t.Fatalf("the Put under way failed after the sweep: %v", err)
	}
	r, err := s.Get(t.Context(), "input/live.csv")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "a,b\n1,2\n" {
		t.Fatalf("the object is %q", b)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := fsblob.SweepDead(ctx, dir, true); !errors.Is(err, context.Canceled) {
		t.Fatalf("SweepDead with an ended context = %v", err)
	}
}
