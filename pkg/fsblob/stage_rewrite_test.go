package fsblob_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/fsblob"
)

// TestStageFileRefusesTornCopies: a file rewritten in place with content
// of the same size while StageFile copies it (its size never changes, its
// modification time moves by clock ticks, and a write may stall half done
// when its goroutine is descheduled) is refused with ErrChanged or staged
// whole, old or new, never as a mix of both. The rewrites run for the
// whole test, bounded to a few seconds. On Linux the writer's open
// descriptor alone gets every stage refused (the read lease); the size and
// time fallback alone let torn copies through under load, a stalled write
// being invisible to both.
func TestStageFileRefusesTornCopies(t *testing.T) {
	dir := t.TempDir()
	s, err := fsblob.New(filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "in.csv")
	const size = 8 << 20
	a, b := bytes.Repeat([]byte("a"), size), bytes.Repeat([]byte("b"), size)
	if err := os.WriteFile(src, a, 0o644); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	done := make(chan error, 1)
	opened := make(chan struct{})
	go func() {
		f, err := os.OpenFile(src, os.O_WRONLY, 0)
		close(opened)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		for i := 0; !stop.Load(); i++ {
			buf := a
			if i%2 == 1 {
				buf = b
			}
			if _, err := f.WriteAt(buf, 0); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	defer func() {
		stop.Store(true)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-opened
	changed, clean := 0, 0
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; i < 200 && time.Now().Before(deadline); i++ {
		st, err := s.StageFile(t.Context(), "input/x.csv", src)
		if errors.Is(err, fsblob.ErrChanged) {
			changed++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Publish(t.Context()); err != nil {
			t.Fatal(err)
		}
		r, err := s.Get(t.Context(), "input/x.csv")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
			t.Fatalf("stage %d: a torn copy (%d bytes, first %q, last %q) was accepted", i, len(got), got[0], got[len(got)-1])
		}
		clean++
	}
	t.Logf("under same-size rewrites: %d refused (ErrChanged), %d staged whole", changed, clean)
	if runtime.GOOS == "linux" && clean != 0 {
		t.Errorf("%d stages of a file open for writing were accepted; the lease should refuse them all", clean)
	}
	if changed+clean == 0 {
		t.Fatal("no stage ran")
	}
}

// TestStageFileHoldsOffAWriter: on Linux a writer that opens the file
// while it is being copied waits for the copy (the read lease), so the copy
// is the file as it was and is not refused; without the lease the write
// would land during the copy and move the file's time (refused), or tear
// the copy.
func TestStageFileHoldsOffAWriter(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("read leases are Linux's")
	}
	dir := t.TempDir()
	s, err := fsblob.New(filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "in.csv")
	a := bytes.Repeat([]byte("a"), 64<<20)
	if err := os.WriteFile(src, a, 0o644); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		time.Sleep(5 * time.Millisecond) // during the copy of 64 MiB
		f, err := os.OpenFile(src, os.O_WRONLY, 0)
		if err != nil {
			wrote <- err
			return
		}
		_, err = f.WriteAt(bytes.Repeat([]byte("b"), 64<<20), 0)
		f.Close()
		wrote <- err
	}()
	st, err := s.StageFile(t.Context(), "input/x.csv", src)
	if err != nil {
		t.Fatalf("the copy was refused or failed (the writer should have waited): %v", err)
	}
	if _, err := st.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	r, err := s.Get(t.Context(), "input/x.csv")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, a) {
		t.Fatalf("the copy is not the file as it was before the writer opened it (first %q, last %q)", got[0], got[len(got)-1])
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}
