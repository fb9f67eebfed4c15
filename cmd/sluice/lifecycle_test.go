package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// TestSignalStopsRunAndResumes: SIGTERM and SIGINT, sent to a real process
// in the middle of a batch, end it within a bound with a hint to resume; the
// same command then resumes the batch and gives the clean run's output.
func TestSignalStopsRunAndResumes(t *testing.T) {
	orders, fin, cfg, clean := genCase(t, 300000, 2000) // 150 chunks
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			data := t.TempDir()
			cmd := exec.Command(bin, "run", "--json", "--workers", "1", "--data", data, "--config", cfg, "--reference", fin, orders)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				if chunksWritten(data) {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			sent := time.Now()
			cmd.Process.Signal(sig)
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			var err error
			select {
			case err = <-exited:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("%v did not stop the run within 20s", sig)
			}
			var ee *exec.ExitError
			if err == nil {
				t.Skip("the run ended before the signal landed: nothing to resume")
			}
			if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(stderr.String(), "run the same command again") {
				t.Fatalf("after %v: %v, stderr %s", sig, err, stderr.String())
			}
			t.Logf("%v stopped the run in %v", sig, time.Since(sent))
			again := runCLI(t, nil, "run", "--json", "--data", data, "--config", cfg, orders)
			if again.code != 0 || !again.Resumed {
				t.Fatalf("rerun: exit %d resumed %v %s", again.code, again.Resumed, again.stderr)
			}
			sameOutputs(t, again, clean)
			if n := emails(t, data); n != 1 {
				t.Fatalf("%d emails, want 1", n)
			}
		})
	}
}

// TestRunRefusesNonRegularInput: a FIFO or /dev/zero is refused at once,
// and the data directory's lock is not held.
func TestRunRefusesNonRegularInput(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "orders.csv")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	_, fin := testenv.SeedSample(t)
	data := t.TempDir()
	for path, want := range map[string]string{fifo: "named pipe", "/dev/zero": "device"} {
		cmd := exec.Command(bin, "run", "--data", data, "--reference", fin, path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 || !strings.Contains(stderr.String(), want) {
				t.Errorf("run %s: %v, stderr %q; want a failure saying %q", path, err, stderr.String(), want)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("run %s blocked", path)
		}
	}
}

// TestFullDiskOnRealFilesystem runs on a tmpfs with room for the reference
// and then 1× or 2× the input: the disk fills during the split or the
// processing (enrichment makes the output 1.6× the input; measured, the
// processing filled the disk from 1.4× to 2.7×, and at 2.8× the run fits
// since the ledger stores rejected rows compressed in blocks). The merge
// writes no output locally any more (the spool wrote it in place while
// processing; the merge renames it), so a full disk cannot catch it there;
// pkg/embedded TestDiskFullStopsRunAndResumes injects one at its point. The
// run fails within a bounded time naming the directory and the space
// needed; once the tmpfs grows, the same command resumes the batch and
// gives the clean run's output.
func TestFullDiskOnRealFilesystem(t *testing.T) {
	orders, fin, cfg, clean := genCase(t, 100000, 5000)
	st, err := os.Stat(orders)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		stage  string
		factor float64
	}{{"split", 1.0}, {"process", 2.0}} {
		t.Run(c.stage, func(t *testing.T) {
			data := t.TempDir()
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", data).CombinedOutput(); err != nil {
				t.Skipf("cannot mount a tmpfs here (%v: %s); the injected-ENOSPC tests in pkg/embedded cover the logic", err, bytes.TrimSpace(out))
			}
			t.Cleanup(func() { exec.Command("umount", "-l", data).Run() })
			if r := runCLI(t, nil, "reference", "load", "--data", data, "--config", cfg, fin); r.code != 0 {
				t.Fatalf("reference load: %d %s", r.code, r.stderr)
			}
			var fs syscall.Statfs_t
			syscall.Statfs(data, &fs)
			used := int64(fs.Blocks-fs.Bfree) * fs.Bsize
			size := used + int64(c.factor*float64(st.Size())) + 1<<20
			if out, err := exec.Command("mount", "-o", "remount,size="+itoa(int(size)), data).CombinedOutput(); err != nil {
				t.Fatalf("shrinking the tmpfs: %v %s", err, out)
			}
			start := time.Now()
			full := runCLI(t, nil, "run", "--json", "--data", data, "--config", cfg, orders)
			if full.code == 0 {
				t.Fatalf("the run fit in %d bytes", size)
			}
			if d := time.Since(start); d > time.Minute {
				t.Fatalf("the full disk took %v to end the run", d)
			}
			t.Logf("full at %.1f× the input: %s", c.factor, full.stderr)
			for _, want := range []string{"the disk is full", data, "needs up to about", "run the same command again"} {
				if !strings.Contains(full.stderr, want) {
					t.Fatalf("stderr does not say %q:\n%s", want, full.stderr)
				}
			}
			if out, err := exec.Command("mount", "-o", "remount,size=512m", data).CombinedOutput(); err != nil {
				t.Fatalf("growing the tmpfs: %v %s", err, out)
			}
			again := runCLI(t, nil, "run", "--json", "--data", data, "--config", cfg, orders)
			if again.code != 0 || !again.Resumed {
				t.Fatalf("rerun: exit %d resumed %v %s", again.code, again.Resumed, again.stderr)
			}
			sameOutputs(t, again, clean)
			if n := emails(t, data); n != 1 {
				t.Fatalf("%d emails, want 1", n)
			}
		})
	}
}

// TestGCCommand: `sluice gc --dry-run` lists what retention lets go of and
// removes nothing; `sluice gc` removes it and says how much it freed.
func TestGCCommand(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	cfg := filepath.Join(t.TempDir(), "cfg.yaml")
	os.WriteFile(cfg, []byte("retention: {outputs: 0s}\n"), 0o644)
	data := t.TempDir()
	r := runCLI(t, nil, "run", "--json", "--data", data, "--config", cfg, "--reference", fin, orders)
	if r.code != 0 {
		t.Fatalf("run: exit %d %s", r.code, r.stderr)
	}
	out, err := exec.Command(bin, "gc", "--dry-run", "--data", data, "--config", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "would remove output") || !strings.Contains(string(out), r.Output) {
		t.Fatalf("gc --dry-run: %v\n%s", err, out)
	}
	if _, err := os.Stat(r.Output); err != nil {
		t.Fatal("the dry run removed the output")
	}
	out, err = exec.Command(bin, "gc", "--data", data, "--config", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "removed 3 file(s)") {
		t.Fatalf("gc: %v\n%s", err, out)
	}
	if _, err := os.Stat(r.Output); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("gc left the output")
	}
	// The default configuration keeps outputs: nothing more to do.
	out, err = exec.Command(bin, "gc", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "removed 0 file(s), 0 bytes") {
		t.Fatalf("second gc: %v\n%s", err, out)
	}
}

// TestKilledReferenceLoadIsSwept: a reference load killed half-way leaves
// its temporary files; the next command on the directory removes them.
func TestKilledReferenceLoadIsSwept(t *testing.T) {
	dir := t.TempDir()
	_, fin, _, err := gen.WriteFiles(dir, gen.Options{Rows: 400000, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	temps := func() []string {
		var all []string
		for _, p := range []string{"reference/.refdata-*", "reference/.refstore-*", "reference/.tmp-*", "bucket/*/.sluice-tmp-*"} {
			m, _ := filepath.Glob(filepath.Join(data, p))
			all = append(all, m...)
		}
		return all
	}
	cmd := exec.Command(bin, "reference", "load", "--data", data, fin)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(temps()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	left := temps()
	if len(left) == 0 {
		t.Skip("the load ended before the kill: no temp file to sweep")
	}
	out, err := exec.Command(bin, "gc", "--data", data).CombinedOutput()
	if err != nil {
		t.Fatalf("gc: %v\n%s", err, out)
	}
	if now := temps(); len(now) != 0 {
		t.Fatalf("temp files of the killed load survived the next start: %v", now)
	}
}

// TestSecondSignalEndsAtOnce: the first SIGTERM lets in-flight work drain
// (here one big chunk); a second one ends the process at once, as the
// default action does, instead of being swallowed.
func TestSecondSignalEndsAtOnce(t *testing.T) {
	dir := t.TempDir()
	orders, fin, _, err := gen.WriteFiles(dir, gen.Options{Rows: 300000, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "cfg.yaml")
	os.WriteFile(cfg, []byte("chunkRows: 300000\n"), 0o644) // one chunk: a long drain
	data := t.TempDir()
	if r := runCLI(t, nil, "reference", "load", "--data", data, fin); r.code != 0 {
		t.Fatalf("reference load: %d %s", r.code, r.stderr)
	}
	cmd := exec.Command(bin, "run", "--json", "--data", data, "--config", cfg, orders)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(filepath.Join(data, "bucket", "*", "to_process", "*.csv")); len(m) > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// The chunk is written before its message is sent: give the worker a
	// moment to take it (it then takes a second or more to process).
	time.Sleep(150 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(20 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Skipf("the run ended before the signals landed (%v)", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("after two SIGTERMs: %v; want the process ended by the second one", err)
	}
}
