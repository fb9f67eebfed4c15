package embedded_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
	"github.com/sluicehq/sluice/pkg/wire"
)

// TestNonRegularInputIsRefused: a FIFO, a device and a directory are
// refused at once with a clear message; nothing opens the FIFO (that would
// block until a writer came).
func TestNonRegularInputIsRefused(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "orders.csv")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	eng, err := embedded.Open(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for path, want := range map[string]string{fifo: "named pipe", "/dev/zero": "device", t.TempDir(): "directory"} {
		done := make(chan error, 1)
		go func() { _, err := eng.Submit(t.Context(), path); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Submit(%s) = %v, want an error naming the path and %q", path, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Submit(%s) blocked", path) // the goroutine stays blocked in open(2)
		}
	}
	if bs, _ := eng.Ledger.ListBatches(t.Context(), sluice.BatchFilter{}); len(bs) != 0 {
		t.Fatalf("%d batches created from refused inputs", len(bs))
	}
}

func chunkedConfig(rows int) *config.Pipeline {
	cfg := config.Default()
	cfg.ChunkRows = rows
	return cfg
}

// TestDiskFullStopsRunAndResumes: ENOSPC during split, process or merge
// (injected at the stage's fault point) ends Process within a bounded time
// with a message naming the directory and the space needed, instead of
// backing off forever; once the disk has room, running again resumes the
// batch and gives exactly a clean run's output.
func TestDiskFullStopsRunAndResumes(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	clean := runFile(t, chunkedConfig(2500), orders, fin)
	for _, point := range []string{pipeline.PointSplitAfterChunkPut, pipeline.PointWorkAfterParts, pipeline.PointMergeAfterOutput} {
		t.Run(point, func(t *testing.T) {
			eng, err := embedded.Open(t.TempDir(), chunkedConfig(2500), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
				t.Fatal(err)
			}
			eng.Fault = func(p string) error {
				if p == point {
					return &os.PathError{Op: "write", Path: filepath.Join(eng.Dir, "bucket", "x"), Err: syscall.ENOSPC}
				}
				return nil
			}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			start := time.Now()
			sub, b, err := eng.Process(ctx, orders, nil, nil)
			if !errors.Is(err, embedded.ErrDiskFull) {
				t.Fatalf("Process = %v (state %s), want ErrDiskFull", err, b.State)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Fatalf("the full disk took %v to end the run", d)
			}
			msg := err.Error()
			for _, want := range []string{eng.Dir, "free", "needs up to about", "run the same command again", sub.BatchID} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not say %q", msg, want)
				}
			}
			if got, _ := eng.Ledger.GetBatch(t.Context(), sub.BatchID); got.State.Terminal() {
				t.Fatalf("the batch ended (%s: %s); it must stay resumable", got.State, got.Reason)
			}
			eng.Fault = nil // space freed
			again := runOn(t, eng, orders, "")
			if again.batch.ID != sub.BatchID || again.batch.State != sluice.StateCompleted {
				t.Fatalf("rerun: batch %s %s, want %s completed", again.batch.ID, again.batch.State, sub.BatchID)
			}
			if !bytes.Equal(again.output, clean.output) || !bytes.Equal(again.errors, clean.errors) {
				t.Fatalf("resumed output differs from a clean run: %s", firstDiff(again.output, clean.output))
			}
			if len(again.emails) != 1 {
				t.Fatalf("%d emails", len(again.emails))
			}
		})
	}
}

// TestDeadLetteredChunkFailsItsBatch: a chunk that fails on every try is
// dead-lettered, and its batch fails with the cause as the reason and a
// failure email, instead of Wait reporting a stall.
func TestDeadLetteredChunkFailsItsBatch(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	eng, err := embedded.Open(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
		t.Fatal(err)
	}
	eng.Fault = func(p string) error {
		if p == pipeline.PointWorkAfterParts {
			return errors.New("the catalog lost its unitCost column")
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	_, b, err := eng.Process(ctx, orders, nil, nil)
	if err != nil {
		t.Fatalf("Process = %v, want a failed batch", err)
	}
	if b.State != sluice.StateFailed || !strings.Contains(b.Reason, "unitCost") || !strings.Contains(b.Reason, fmt.Sprint(pipeline.MaxReceive)) {
		t.Fatalf("batch %s: %q, want failed with the cause", b.State, b.Reason)
	}
	emails, _ := filepath.Glob(filepath.Join(eng.Dir, wire.OutboxDir, "*.eml"))
	if len(emails) != 1 {
		t.Fatalf("%d emails, want the failure email", len(emails))
	}
	if subject, text := readEmail(t, emails[0]); !strings.Contains(subject+text, "unitCost") {
		t.Fatalf("the email does not say why: %s\n%s", subject, text)
	}
}

// TestChangedWhileReadLeavesNoOrphan: a file that grows while it is being
// submitted is refused and its partial copy is not left under input/.
func TestChangedWhileReadLeavesNoOrphan(t *testing.T) {
	orders, _ := testenv.SeedSample(t)
	eng, err := embedded.Open(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	seed, err := os.ReadFile(orders)
	if err != nil {
		t.Fatal(err)
	}
	line := seed[bytes.IndexByte(seed, '\n')+1:]
	line = line[:bytes.IndexByte(line, '\n')+1]
	for try := 0; try < 5; try++ {
		// A name per try: a try whose copy happened to match made a batch,
		// and its object rightly stays under input/.
		name := fmt.Sprintf("growing-%d.csv", try)
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, bytes.Repeat(seed, 40), 0o644); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		grown := make(chan struct{})
		writing := make(chan struct{})
		go func() {
			defer close(grown)
			f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			defer f.Close()
			f.Write(line)
			close(writing) // the kernel's copy is quick: grow the file from before it starts
			for {
				select {
				case <-stop:
					return
				default:
					f.Write(line)
				}
			}
		}()
		<-writing
		_, err := eng.Submit(t.Context(), path)
		close(stop)
		<-grown
		if err == nil {
			continue // the copy happened to match: try again
		}
		if !strings.Contains(err.Error(), "changed while it was being read") {
			t.Fatalf("Submit = %v", err)
		}
		left, _ := eng.Blobs.List(t.Context(), pipeline.InputPrefix)
		for _, o := range left {
			if o.Key == pipeline.InputPrefix+name {
				t.Fatalf("the partial copy stayed: %v", left)
			}
		}
		if ents, _ := os.ReadDir(filepath.Join(eng.Dir, wire.BucketDir, "input")); len(ents) != len(left) {
			t.Fatalf("files under input/ %v, objects %v: a temporary copy stayed", ents, left)
		}
		return
	}
	t.Skip("the file never changed between the two reads")
}
