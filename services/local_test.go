package services_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

// TestLocalBackendFourProcesses runs the four services as separate
// processes on one data directory (SQLite queues and ledger shared across
// processes, the directory bucket, the outbox).
func TestLocalBackendFourProcesses(t *testing.T) {
	dir := t.TempDir()
	orders, fin, st, err := gen.WriteFiles(filepath.Join(dir, "in"), gen.Options{Rows: 30000, Seed: 4, BadRate: 0.03})
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(cfgFile, []byte("chunkRows: 2500\n"), 0o644)
	data := filepath.Join(dir, "data")

	// Submit with the engine (it holds the directory's lock only while open).
	eng, err := embedded.Open(data, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
		t.Fatal(err)
	}
	sub, err := eng.Submit(t.Context(), orders)
	if err != nil {
		t.Fatal(err)
	}
	eng.Close()

	var procs []*exec.Cmd
	for _, s := range []string{"splitter", "worker", "worker", "merger", "notifier"} {
		cmd := exec.Command(bins[s])
		cmd.Env = append(os.Environ(), "SLUICE_BACKEND=local", "SLUICE_DATA="+data, "SLUICE_CONFIG="+cfgFile, "SLUICE_HTTP_ADDR="+freeAddr(t), "SLUICE_WAIT=1s")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("%s:\n%s", s, tail(stderr.String(), 2000))
			}
		})
	}
	db, err := sqlite.Open(filepath.Join(data, "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b sluice.Batch
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		b, err = db.Ledger().GetBatch(t.Context(), sub.BatchID)
		if err == nil && b.State.Terminal() && b.EmailID != "" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if b.State != sluice.StateCompleted {
		t.Fatalf("batch %s: %s %q", sub.BatchID, b.State, b.Reason)
	}
	wantOut, wantErrs, _ := embeddedOutput(t, 2500, orders, fin)
	got, _ := os.ReadFile(filepath.Join(data, "bucket", filepath.FromSlash(b.OutputKey)))
	gotErrs, _ := os.ReadFile(filepath.Join(data, "bucket", filepath.FromSlash(b.ErrorsKey)))
	if !bytes.Equal(got, wantOut) || !bytes.Equal(gotErrs, wantErrs) {
		t.Fatalf("four processes made different outputs than one (%d/%d vs %d/%d bytes)", len(got), len(gotErrs), len(wantOut), len(wantErrs))
	}
	if b.RowsRejected != st.Bad || b.TotalChunks != 12 {
		t.Fatalf("rejected %d (want %d), chunks %d", b.RowsRejected, st.Bad, b.TotalChunks)
	}
	mails, _ := filepath.Glob(filepath.Join(data, "outbox", "*.eml"))
	if len(mails) != 1 {
		t.Fatalf("%d emails", len(mails))
	}
}
