package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sqlite"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// bin is the sluice binary, built once: the crash tests need a real
// process to kill.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-bin-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "sluice")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		panic("building sluice: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	runResult
	code   int
	stderr string
}

func runCLI(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if r.code == 0 && bytes.HasPrefix(out.Bytes(), []byte("{")) {
		if err := json.Unmarshal(out.Bytes(), &r.runResult); err != nil {
			t.Fatalf("stdout is not one JSON object: %v\n%s", err, out.String())
		}
	}
	return r
}

func TestRunSeedSampleJSON(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	data := t.TempDir()
	r := runCLI(t, nil, "run", "--json", "--data", data, "--reference", fin, orders)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r.Status != "completed" || r.RowsIn != 10000 || r.RowsOut != 10000 || r.RowsRejected != 0 || r.BatchID == "" {
		t.Fatalf("result %+v", r.runResult)
	}
	for _, p := range []string{r.Output, r.Errors, r.Email} {
		if !filepath.IsAbs(p) {
			t.Fatalf("path %q is not absolute", p)
		}
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
	// Without --reference the loaded catalog is used; flags may follow the file.
	r2 := runCLI(t, nil, "run", orders, "--data", data, "--json")
	if r2.code != 0 || r2.RowsOut != 10000 || r2.BatchID == r.BatchID {
		t.Fatalf("second run: exit %d %+v %s", r2.code, r2.runResult, r2.stderr)
	}
	st := exec.Command(bin, "status", "--data", data)
	out, err := st.CombinedOutput()
	if err != nil || strings.Count(string(out), "completed") != 2 {
		t.Fatalf("status: %v\n%s", err, out)
	}
}

func TestUsageAndClearErrors(t *testing.T) {
	data := t.TempDir()
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"run", "--data", data}, 2, "exactly one input file"},
		{[]string{"run", "--data", data, "/nonexistent.csv"}, 1, "no such file"},
		{[]string{"gen", "--rows", "0"}, 2, "needs --rows"},
		{[]string{"run", "--data", t.TempDir(), "--config", "/nonexistent.yaml", "x"}, 1, "no such file"},
	}
	for _, c := range cases {
		r := runCLI(t, nil, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("sluice %v: exit %d, stderr %q; want exit %d mentioning %q", c.args, r.code, r.stderr, c.code, c.msg)
		}
	}
	// A run with no reference loaded says what to do.
	in := filepath.Join(t.TempDir(), "in.csv")
	os.WriteFile(in, []byte("uuid\n1\n"), 0o644)
	if r := runCLI(t, nil, "run", "--data", data, in); r.code != 1 || !strings.Contains(r.stderr, "sluice reference load") {
		t.Errorf("no reference: exit %d, %q", r.code, r.stderr)
	}
}

// genCase makes a generated input, a small-chunk config and a clean run's
// outputs to compare against.
func genCase(t *testing.T, rows, chunkRows int) (orders, fin, cfg string, clean result) {
	dir := t.TempDir()
	orders, fin, _, err := gen.WriteFiles(dir, gen.Options{Rows: rows, Seed: 9, BadRate: 0.04})
	if err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(dir, "cfg.yaml")
	os.WriteFile(cfg, []byte("chunkRows: "+itoa(chunkRows)+"\n"), 0o644)
	clean = runCLI(t, nil, "run", "--json", "--data", t.TempDir(), "--config", cfg, "--reference", fin, orders)
	if clean.code != 0 {
		t.Fatalf("clean run: exit %d %s", clean.code, clean.stderr)
	}
	return orders, fin, cfg, clean
}

func itoa(n int) string { return strconv.Itoa(n) }

func sameOutputs(t *testing.T, got, want result) {
	t.Helper()
	for _, p := range [][2]string{{got.Output, want.Output}, {got.Errors, want.Errors}} {
		a, err1 := os.ReadFile(p[0])
		b, err2 := os.ReadFile(p[1])
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs from the clean run's %s (%v %v)", p[0], p[1], err1, err2)
		}
	}
	if got.RowsOut != want.RowsOut || got.RowsRejected != want.RowsRejected {
		t.Fatalf("counts %d/%d, clean %d/%d", got.RowsOut, got.RowsRejected, want.RowsOut, want.RowsRejected)
	}
}

// chunksWritten reports whether a few chunks' outputs are stored: three
// parts, or a spooled output past about three chunks of 2000 rows.
func chunksWritten(data string) bool {
	parts, _ := filepath.Glob(filepath.Join(data, "bucket", "*", "output", "parts", "*.csv"))
	if len(parts) >= 3 {
		return true
	}
	spooled, _ := filepath.Glob(filepath.Join(data, "bucket", "*", "output", "spool", "output.csv"))
	for _, p := range spooled {
		if st, err := os.Stat(p); err == nil && st.Size() > 600_000 {
			return true
		}
	}
	return false
}

func emails(t *testing.T, data string) int {
	files, _ := filepath.Glob(filepath.Join(data, "outbox", "*.eml"))
	return len(files)
}

// TestCrashAtEveryPointAndResume ends the process at each step boundary in
// turn, as kill -9 would, then reruns the same command: the output and
// the error report must equal a clean run's, and one email must exist.
func TestCrashAtEveryPointAndResume(t *testing.T) {
	orders, fin, cfg, clean := genCase(t, 20000, 3000) // 7 chunks
	once := map[string]bool{
		pipeline.PointSplitAfterCreate: true, pipeline.PointSplitAfterTotal: true, pipeline.PointSplitAfterArchive: true,
		pipeline.PointMergeAfterOutput: true, pipeline.PointMergeAfterManifest: true, pipeline.PointMergeAfterState: true,
		pipeline.PointNotifyAfterSend: true, pipeline.PointSplitAfterScanSend: true,
	}
	// The scan split's points, and the split's own points as the stitch
	// passes them, run with the split fanned out to scan tasks of 64 KiB,
	// the smallest range (about 22 ranges; maxFileBytes 1 GiB keeps the
	// ranges under the limit); the outputs must equal the one-stream run's.
	scanCfg := filepath.Join(t.TempDir(), "scan.yaml")
	os.WriteFile(scanCfg, []byte("chunkRows: 3000\nlimits: {maxFileBytes: 1073741824}\nscanSplit: {minBytes: 1, rangeBytes: 65536}\n"), 0o644)
	scanRun := map[string]bool{
		pipeline.PointSplitAfterScanSend: true, pipeline.PointScanAfterSummary: true, pipeline.PointScanAfterCount: true,
	}
	var points []string
	for _, p := range pipeline.Points {
		points = append(points, p)
		if p == pipeline.PointSplitAfterChunkSend || p == pipeline.PointSplitAfterTotal || p == pipeline.PointSplitAfterArchive {
			points = append(points, p+"/scan")
		}
	}
	// The spool's points: its third chunk written, not recorded; the
	// others (files started, not recorded; digests recorded, files not
	// moved; one file moved) come once a batch.
	points = append(points, pipeline.SpoolPoints...)
	for _, p := range pipeline.SpoolPoints {
		once[p] = p != pipeline.PointSpoolAfterWrite
	}
	for _, name := range points {
		t.Run(name, func(t *testing.T) {
			p, scan := strings.CutSuffix(name, "/scan")
			cfg := cfg
			if scan || scanRun[p] {
				cfg = scanCfg
			}
			data := t.TempDir()
			spec := p + "@3"
			if once[p] {
				spec = p + "@1"
			}
			crashed := runCLI(t, []string{"SLUICE_CRASH_AT=" + spec}, "run", "--json", "--data", data, "--config", cfg, "--reference", fin, orders)
			if crashed.code != 86 {
				t.Fatalf("the crash hook did not fire: exit %d %s", crashed.code, crashed.stderr)
			}
			again := runCLI(t, nil, "run", "--json", "--data", data, "--config", cfg, orders)
			if again.code != 0 {
				t.Fatalf("rerun: exit %d %s", again.code, again.stderr)
			}
			if !again.Resumed {
				t.Fatalf("rerun started a new batch instead of resuming")
			}
			sameOutputs(t, again, clean)
			if n := emails(t, data); n != 1 {
				t.Fatalf("%d emails, want 1", n)
			}
		})
	}
}

// TestKillMidBatchAndResume sends a real SIGKILL while chunks are being
// processed.
func TestKillMidBatchAndResume(t *testing.T) {
	orders, fin, cfg, clean := genCase(t, 300000, 2000) // 150 chunks
	data := t.TempDir()
	cmd := exec.Command(bin, "run", "--json", "--workers", "1", "--data", data, "--config", cfg, "--reference", fin, orders)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	killed := false
	for time.Now().Before(deadline) {
		if chunksWritten(data) {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	err := cmd.Wait()
	if !killed {
		t.Fatalf("no chunk was processed within a minute (%v)", err)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Skipf("the run ended before the kill landed (%v): nothing to resume", err)
	}
	again := runCLI(t, nil, "run", "--json", "--data", data, "--config", cfg, orders)
	if again.code != 0 || !again.Resumed {
		t.Fatalf("rerun: exit %d resumed %v %s", again.code, again.Resumed, again.stderr)
	}
	sameOutputs(t, again, clean)
	if n := emails(t, data); n != 1 {
		t.Fatalf("%d emails, want 1", n)
	}
}

func TestDLQListAndRedriveLocal(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	data := t.TempDir()
	db, err := sqlite.Open(filepath.Join(data, "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Queue("ingest", sqlite.QueueOptions{}).Send(t.Context(), []byte(`{not json`)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if r := runCLI(t, nil, "run", "--json", "--data", data, "--reference", fin, orders); r.code != 0 || r.RowsOut != 10000 {
		t.Fatalf("run beside a poison message: exit %d %+v", r.code, r.runResult)
	}
	out, err := exec.Command(bin, "dlq", "list", "ingest", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "malformed message") || !strings.Contains(string(out), "{not json") {
		t.Fatalf("dlq list: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "dlq", "redrive", "ingest", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "moved 1 message(s)") {
		t.Fatalf("dlq redrive: %v\n%s", err, out)
	}
	out, _ = exec.Command(bin, "dlq", "list", "ingest", "--data", data).CombinedOutput()
	if !strings.Contains(string(out), "ingest-dlq is empty") {
		t.Fatalf("after redrive: %s", out)
	}
	if r := runCLI(t, nil, "dlq", "list", "nosuch"); r.code != 2 {
		t.Fatalf("unknown queue: exit %d", r.code)
	}
}
