//go:build unix

package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/pkg/fsblob"
)

// TestCloseStopsTheBucketWalk: Close right after Open (a Ctrl-C, a command
// that opens only to read) stops Open's sweep of a bucket of 20,000
// directories instead of waiting for the whole walk: the sweep ends with
// the cancellation (the walk takes about 100 ms here, Close comes
// microseconds after Open).
func TestCloseStopsTheBucketWalk(t *testing.T) {
	data := t.TempDir()
	for i := range 5000 {
		for _, sub := range []string{"output/completed", "output/parts", "to_process"} {
			os.MkdirAll(filepath.Join(data, "bucket", fmt.Sprintf("b%05d", i), sub), 0o755)
		}
	}
	eng, err := Open(data, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(eng.sweepErr, context.Canceled) {
		t.Fatalf("the sweep ended with %v, want it stopped by Close", eng.sweepErr)
	}
}

// TestPruneSparesTheDirectoriesOfALiveProcess: `sluice gc` leaves empty
// directories while another process holds its marker in the bucket (a
// directory it just made is empty until its write lands there), and
// prunes them once it is gone.
func TestPruneSparesTheDirectoriesOfALiveProcess(t *testing.T) {
	root := t.TempDir()
	empty := filepath.Join(root, "b1", "output", "completed")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(root, fsblob.TempPrefix+"live-aaaaaaaa")
	holder, err := os.Create(marker)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	if err := pruneEmptyDirs(root); err == nil {
		t.Error("pruneEmptyDirs did not say why it left the directories")
	}
	if _, err := os.Stat(empty); err != nil {
		t.Fatalf("pruned beside a live process: %v", err)
	}
	holder.Close()
	os.Remove(marker)
	if err := pruneEmptyDirs(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "b1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the empty directories stay with no other process (%v)", err)
	}
}
