package services_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// TestCLIOverAWS drives the CLI's AWS paths, which build their ports with
// wire.AWS, against the running services: `reference load --aws` fills the
// table the workers enrich from, `run --aws` uploads a file and follows the
// batch the services make of it, and `console --aws` lists that batch.
func TestCLIOverAWS(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	s := newStack(t, 5000)
	// This stack runs the seed's layout (chunks copied to to_process/), so
	// the grants that mode needs are used by some test (least privilege).
	if err := os.WriteFile(s.cfgFile, []byte("chunkRows: 5000\ncopyChunks: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sluiceCmd := func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bins["sluice"], args...)
		cmd.Env = append(os.Environ(), s.env...)
		return cmd
	}
	if out, err := sluiceCmd(t.Context(), "reference", "load", "--aws", fin).CombinedOutput(); err != nil || !strings.Contains(string(out), "10000 rows from") || !strings.Contains(string(out), "new batches use it") {
		t.Fatalf("sluice reference load --aws: %v\n%s", err, out)
	}
	s.startAll()

	run := sluiceCmd(t.Context(), "run", "--aws", "--json", "--timeout", "2m", orders)
	var stdout, stderr bytes.Buffer
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	// The emulator sends no bucket notification: once the CLI's upload is
	// there, send what S3 would.
	key := "input/" + filepath.Base(orders)
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := s.blobs.Stat(t.Context(), key)
		if err == nil {
			s.send("ingest", awstest.ObjectCreated(s.bucket, key, info.Size, info.ETag, "0C"))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice run --aws uploaded nothing to %s: %v\n%s", key, err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("sluice run --aws: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var res struct {
		BatchID, Status string
		RowsIn          int
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.Status != "completed" || res.RowsIn != 10000 {
		t.Fatalf("sluice run --aws --json: %+v (%v)\n%s", res, err, stdout.String())
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	con := sluiceCmd(ctx, "console", "--aws", "--addr", "127.0.0.1:0")
	out, err := con.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := con.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { con.Process.Signal(syscall.SIGINT); con.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	url, _, ok := strings.Cut(strings.TrimPrefix(line, "Sluice console on "), " ")
	if err != nil || !ok {
		t.Fatalf("sluice console --aws said %q (%v)", line, err)
	}
	resp, err := http.Get(url + "api/batches")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), res.BatchID) {
		t.Fatalf("console --aws GET /api/batches: %s\n%s", resp.Status, body)
	}
}
