package embedded_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/wire"
)

type gatedReader struct {
	gate string
	sent bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if !g.sent {
		g.sent = true
		p[0] = 'x'
		return 1, nil
	}
	for {
		if _, err := os.Stat(g.gate); err == nil {
			return 0, io.EOF
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSharedDirHelperWriter is the "other process" of
// TestOpenSweepSparesLiveWriteOfAnotherProcess: a local-backend service
// (wire.Local on the same data directory, no lock, as SLUICE_BACKEND=local).
func TestSharedDirHelperWriter(t *testing.T) {
	data := os.Getenv("SLUICE_TEST_SHARED_DATA")
	if data == "" {
		t.Skip("helper")
	}
	ports, err := wire.Local(data)
	if err != nil {
		fmt.Println("HELPER-ERR", err)
		return
	}
	_, err = ports.Blobs.Put(context.Background(), "b1/output/completed/orders.csv", &gatedReader{gate: filepath.Join(data, "gate")})
	fmt.Println("HELPER-RESULT", err)
}

// TestOpenSweepSparesLiveWriteOfAnotherProcess: a service process on the
// data directory (SLUICE_BACKEND=local) is writing an object when `sluice
// run` (or the chaos driver's submit) opens an engine on the same
// directory; its start-up sweep leaves the service's temporary file (its
// process's marker is held), and the service's Put completes.
func TestOpenSweepSparesLiveWriteOfAnotherProcess(t *testing.T) {
	data := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestSharedDirHelperWriter$", "-test.v")
	cmd.Env = append(os.Environ(), "SLUICE_TEST_SHARED_DATA="+data)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, "bucket", "b1", "output", "completed")
	deadline := time.Now().Add(60 * time.Second)
	for {
		ents, _ := os.ReadDir(dir)
		if len(ents) > 0 && strings.HasPrefix(ents[0].Name(), fsblob.TempPrefix) {
			t.Logf("service writing %s", ents[0].Name())
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("helper never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // its last write is before the sweep starts
	eng, err := embedded.Open(data, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng.Close() // waits for the sweep
	os.WriteFile(filepath.Join(data, "gate"), nil, 0o644)
	b, _ := io.ReadAll(out)
	cmd.Wait()
	t.Logf("helper: %s", b)
	if !strings.Contains(string(b), "HELPER-RESULT <nil>") {
		t.Fatalf("the other process's Put failed: the engine's Open swept its live write")
	}
	if got, err := os.ReadFile(filepath.Join(dir, "orders.csv")); err != nil || string(got) != "x" {
		t.Fatalf("the other process's object: %q, %v", got, err)
	}
}

// TestLockSurvivesDeletedLockFile: with the data directory's .lock
// deleted (rm -rf of the directory's contents, a clean-up script), a
// second engine still cannot open beside the first (whose writes its sweep
// would take as dead): the first also holds the directory's own flock.
func TestLockSurvivesDeletedLockFile(t *testing.T) {
	data := t.TempDir()
	a, err := embedded.Open(data, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	os.Remove(filepath.Join(data, ".lock"))
	b, err := embedded.Open(data, nil, nil)
	if err == nil {
		b.Close()
		t.Errorf("a second engine opened the data directory while the first holds it")
	}
}
