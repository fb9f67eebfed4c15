package fsblob_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// childDirEnv makes the test binary, run again, the other process: it Puts
// "new <i>" to the key for each line <i> read, answering "ok".
const childDirEnv = "FSBLOB_XPROC_CHILD_DIR"

// runPutChild is the other process's loop.
func runPutChild(t *testing.T, dir string) {
	s, err := fsblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if _, err := s.Put(t.Context(), "input/f.csv", strings.NewReader("new "+in.Text()+"\n")); err != nil {
			fmt.Println("err", err)
			continue
		}
		fmt.Println("ok")
	}
}

// TestDeleteIfRacingOtherProcessPut: with SLUICE_BACKEND=local several
// processes share one data directory. DeleteIf(old ETag) racing another
// process's Put of the same key must never remove the new upload: either
// it removes the old one before the rename, or it finds the new ETag.
// The other process is this test binary run again (its own placeMu).
func TestDeleteIfRacingOtherProcessPut(t *testing.T) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		runPutChild(t, dir)
		return
	}
	dir := filepath.Join(t.TempDir(), "bucket")
	s, err := fsblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeleteIfRacingOtherProcessPut$")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	out := bufio.NewScanner(stdout)
	ctx, key, rounds, lost := t.Context(), "input/f.csv", 2000, 0
	for i := range rounds {
		old, err := s.Put(ctx, key, strings.NewReader(fmt.Sprintf("old %d\n", i)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintln(stdin, i); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteIf(ctx, key, old.ETag); err != nil && !errors.Is(err, sluice.ErrETagMismatch) {
			t.Fatal(err)
		}
		if !out.Scan() {
			t.Fatalf("round %d: the other process ended: %v", i, out.Err())
		}
		if a := out.Text(); strings.HasPrefix(a, "err ") && strings.Contains(a, "not found") {
			lost++ // its Put's Stat after the rename found the key gone
			continue
		} else if a != "ok" {
			t.Fatalf("round %d: the other process answered %q", i, a)
		}
		if _, err := s.Stat(ctx, key); errors.Is(err, sluice.ErrNotFound) {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d rounds: DeleteIf(old ETag) removed the new upload another process renamed in", lost, rounds)
	}
	// The place lock is no temporary file: neither sweep removes it.
	if _, err := fsblob.SweepDead(ctx, dir, true); err != nil {
		t.Fatal(err)
	}
	if _, err := fsblob.SweepTemp(dir, []string{fsblob.TempPrefix}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, fsblob.TempPrefix+"place.lock")); err != nil {
		t.Fatalf("a sweep removed the place lock: %v", err)
	}
}
