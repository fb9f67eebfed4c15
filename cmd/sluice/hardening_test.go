package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	stdhtml "html"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// cli runs the binary and returns its exit code, stdout and stderr. A
// command that should have refused to start but serves instead is killed
// after a minute and fails the test, rather than hanging it.
func cli(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("sluice %v did not end within a minute; stderr:\n%s", args, errb.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// TestBadFlagErrorIsLast: for every command, an unknown flag gets its
// error and a one-line hint, with nothing after them and no flag list to
// scroll the error away; -h still prints the flags.
func TestBadFlagErrorIsLast(t *testing.T) {
	data := t.TempDir()
	for _, args := range [][]string{
		{"run"}, {"gen"}, {"reference", "load"}, {"status"}, {"console"}, {"serve"},
		{"dlq", "list", "ingest"}, {"dlq", "redrive", "ingest"}, {"provision"},
	} {
		code, stdout, stderr := cli(t, []string{"SLUICE_DATA=" + data}, append(args, "--frobnicate")...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 2 || stdout != "" || len(lines) != 2 ||
			!strings.Contains(lines[0], "flag provided but not defined: -frobnicate") || !strings.Contains(lines[1], "--help") {
			t.Errorf("sluice %v --frobnicate: exit %d, stdout %q, stderr:\n%s", args, code, stdout, stderr)
		}
		code, _, stderr = cli(t, nil, append(args, "-h")...)
		if code != 0 || !strings.Contains(stderr, "Usage: sluice "+args[0]) || !strings.Contains(stderr, "Flags:") {
			t.Errorf("sluice %v -h: exit %d, stderr:\n%s", args, code, stderr)
		}
	}
	// A bad value is the same, and so is an unknown command.
	code, _, stderr := cli(t, nil, "gen", "--rows", "many")
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); code != 2 || len(lines) != 2 || !strings.Contains(lines[0], `invalid value "many"`) {
		t.Errorf("gen --rows many: exit %d\n%s", code, stderr)
	}
	code, _, stderr = cli(t, nil, "frobnicate")
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); code != 2 || len(lines) != 1 || !strings.Contains(lines[0], "sluice help") {
		t.Errorf("unknown command: exit %d\n%s", code, stderr)
	}
	if entries, _ := os.ReadDir(data); len(entries) != 0 {
		t.Errorf("a refused command wrote into the data directory: %v", entries)
	}
}

// jsonOut checks that stdout is exactly one JSON object and returns it.
func jsonOut(t *testing.T, stdout string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%q", err, stdout)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("stdout holds more than one JSON object: %q", stdout)
	}
	return m
}

// TestJSONAlwaysJSON: every way run --json (and status --json) can fail
// prints one JSON object with status "error" and the message on stdout.
func TestJSONAlwaysJSON(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	locked := t.TempDir()
	eng, err := embedded.Open(locked, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	badCfg := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(badCfg, []byte("chunkRows: [not a number\n"), 0o644)

	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"missing file", []string{"run", "--json", "--data", t.TempDir(), "/nonexistent.csv"}, 1, "no such file"},
		{"no file", []string{"run", "--json", "--data", t.TempDir()}, 2, "exactly one input file"},
		{"bad flag", []string{"run", "--frobnicate", "--json", orders}, 2, "flag provided but not defined"},
		{"bad config", []string{"run", "--json", "--data", t.TempDir(), "--config", badCfg, orders}, 1, "bad.yaml"},
		{"locked data dir", []string{"run", "--json", "--data", locked, orders}, 1, "another sluice process"},
		{"missing reference", []string{"run", "--json", "--data", t.TempDir(), "--reference", "/nonexistent.csv", orders}, 1, "no such file"},
		{"no reference", []string{"run", "--json", "--data", t.TempDir(), orders}, 1, "sluice reference load"},
		{"status missing dir", []string{"status", "--json", "--data", filepath.Join(t.TempDir(), "nope")}, 1, "no data directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, nil, c.args...)
			m := jsonOut(t, stdout)
			msg, _ := m["error"].(string)
			if code != c.code || m["status"] != "error" || !strings.Contains(msg, c.msg) {
				t.Fatalf("exit %d (want %d), %v; stderr %s", code, c.code, m, stderr)
			}
			if _, ok := m["reason"]; c.args[0] == "run" && !ok {
				t.Fatalf("no reason key in %v", m)
			}
		})
	}

	// A batch that fails: the reason is in the object, and stderr does not
	// repeat it. A batch that completes keeps an empty "reason".
	data := t.TempDir()
	if code, _, stderr := cli(t, nil, "reference", "load", "--data", data, fin); code != 0 {
		t.Fatalf("reference load: %d %s", code, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(bad, []byte("id,name\n1,x\n"), 0o644)
	code, stdout, stderr := cli(t, nil, "run", "--json", "--data", data, bad)
	m := jsonOut(t, stdout)
	reason, _ := m["reason"].(string)
	if code != 1 || m["status"] != "failed" || reason == "" {
		t.Fatalf("failed batch: exit %d %v", code, m)
	}
	if strings.Contains(stderr, reason) || strings.Contains(stderr, "batch failed") {
		t.Fatalf("stderr repeats the reason under --json:\n%s", stderr)
	}
	small := filepath.Join(t.TempDir(), "small.csv")
	lines, _ := os.ReadFile(orders)
	os.WriteFile(small, []byte(strings.Join(strings.SplitAfter(string(lines), "\n")[:21], "")), 0o644)
	code, stdout, _ = cli(t, nil, "run", "--json", "--data", data, small)
	m = jsonOut(t, stdout)
	if r, ok := m["reason"]; code != 0 || m["status"] != "completed" || !ok || r != "" {
		t.Fatalf("completed batch: exit %d %v", code, m)
	}
}

// treeState lists every file under dir with its size and time.
func treeState(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			out = append(out, p+" "+info.ModTime().String()+" "+info.Mode().String())
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// TestReadOnlyCommandsWriteNothing: status and dlq list create nothing in
// an empty or missing directory, say which directory and what to run, and
// change nothing in a data directory they read.
func TestReadOnlyCommandsWriteNothing(t *testing.T) {
	empty := t.TempDir()
	missing := filepath.Join(t.TempDir(), "never")
	for _, dir := range []string{empty, missing} {
		for _, args := range [][]string{{"status"}, {"status", "0123456789abcdef0123"}, {"dlq", "list", "ingest"}, {"dlq", "redrive", "ingest"}} {
			code, _, stderr := cli(t, nil, append(args, "--data", dir)...)
			if code != 1 || !strings.Contains(stderr, dir) || !strings.Contains(stderr, "sluice run --data "+dir) || strings.Contains(stderr, "unable to open") {
				t.Errorf("%v on %s: exit %d\n%s", args, dir, code, stderr)
			}
		}
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("status wrote into an empty directory: %v", entries)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("status created the missing directory")
	}

	orders, fin := testenv.SeedSample(t)
	data := t.TempDir()
	small := filepath.Join(t.TempDir(), "small.csv")
	lines, _ := os.ReadFile(orders)
	os.WriteFile(small, []byte(strings.Join(strings.SplitAfter(string(lines), "\n")[:21], "")), 0o644)
	if code, _, stderr := cli(t, nil, "run", "--data", data, "--reference", fin, small); code != 0 {
		t.Fatalf("run: %d %s", code, stderr)
	}
	before := treeState(t, data)
	time.Sleep(20 * time.Millisecond)
	for _, args := range [][]string{{"status"}, {"status", "--json"}, {"dlq", "list", "chunks"}} {
		if code, stdout, stderr := cli(t, nil, append(args, "--data", data)...); code != 0 || stdout == "" {
			t.Fatalf("%v: exit %d %s", args, code, stderr)
		}
	}
	if after := treeState(t, data); !slices.Equal(before, after) {
		t.Fatalf("read-only commands changed the data directory:\nbefore %v\nafter  %v", before, after)
	}
}

// TestRefuseOpenBindWithoutToken: console and serve refuse an address
// beyond loopback unless a token is set or --insecure-no-token is given,
// and refuse before they open anything.
func TestRefuseOpenBindWithoutToken(t *testing.T) {
	for _, cmd := range []string{"console", "serve"} {
		for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
			data := filepath.Join(t.TempDir(), "d")
			code, _, stderr := cli(t, []string{"SLUICE_CONSOLE_TOKEN="}, cmd, "--data", data, "--addr", addr)
			if code != 2 || !strings.Contains(stderr, "refusing to listen on "+addr+" without a token") || !strings.Contains(stderr, "--insecure-no-token") {
				t.Errorf("%s --addr %s: exit %d\n%s", cmd, addr, code, stderr)
			}
			if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s --addr %s created its data directory before refusing", cmd, addr)
			}
		}
	}
	// With a token, or the explicit flag, it starts.
	for _, c := range []struct {
		env  []string
		args []string
		warn bool
	}{
		{[]string{"SLUICE_CONSOLE_TOKEN=s3cret"}, nil, false},
		{[]string{"SLUICE_CONSOLE_TOKEN="}, []string{"--insecure-no-token"}, true},
	} {
		p := start(t, c.env, append([]string{"console", "--data", t.TempDir(), "--addr", "0.0.0.0:0"}, c.args...)...)
		p.waitOut(t, regexp.MustCompile(`Sluice console on http://`))
		stderr := p.stop(t)
		if strings.Contains(stderr, "warning: the console listens") != c.warn {
			t.Errorf("%v: stderr %q", c.args, stderr)
		}
	}
}

// proc is a sluice process started in the background.
type proc struct {
	cmd    *exec.Cmd
	out    *bufio.Scanner
	stderr *syncBuf
	seen   []string
}

type syncBuf struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: bufio.NewScanner(stdout), stderr: &syncBuf{mu: make(chan struct{}, 1)}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// waitOut reads stdout until a line matches and returns the match.
func (p *proc) waitOut(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	for p.out.Scan() {
		p.seen = append(p.seen, p.out.Text())
		if m := re.FindStringSubmatch(p.out.Text()); m != nil {
			return m
		}
	}
	t.Fatalf("the process ended before printing %s; stdout %q, stderr %s", re, p.seen, p.stderr.String())
	return nil
}

// stop sends SIGINT, waits for the exit and returns stderr.
func (p *proc) stop(t *testing.T) string {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() {
		for p.out.Scan() {
		}
		done <- p.cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGINT: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30 s after SIGINT\n%s", p.stderr.String())
	}
	return p.stderr.String()
}

// TestServeSaysWhatItDoes: serve logs one line when a batch starts and one
// when it ends, with its counts, and one when it shuts down; its /metrics
// and console answer only to allowed Host headers.
func TestServeSaysWhatItDoes(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	data := t.TempDir()
	p := start(t, []string{"SLUICE_CONSOLE_TOKEN=", "SLUICE_LOG_LEVEL="}, "serve", "--data", data, "--addr", "127.0.0.1:0", "--reference", fin, "--poll", "100ms")
	m := p.waitOut(t, regexp.MustCompile(`metrics\s+(http://\S+)/metrics`))
	base := m[1]
	for host, want := range map[string]int{"attacker.example": 421, "localhost": 200, "": 200} {
		req, _ := http.NewRequest("GET", base+"/metrics", nil)
		if host != "" {
			req.Host = host
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("/metrics with Host %q: %d, want %d", host, res.StatusCode, want)
		}
	}
	lines, _ := os.ReadFile(orders)
	small := strings.Join(strings.SplitAfter(string(lines), "\n")[:51], "")
	if err := os.WriteFile(filepath.Join(data, "input", "small.csv"), []byte(small), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.stderr.String(), `msg="batch ended"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no batch end logged:\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stderr := p.stop(t)
	var started, ended, shutdown int
	for _, l := range strings.Split(stderr, "\n") {
		switch {
		case strings.Contains(l, `msg="batch started"`) && strings.Contains(l, "file=small.csv"):
			started++
		case strings.Contains(l, `msg="batch ended"`) && strings.Contains(l, "state=completed") && strings.Contains(l, "rows_in=50") && strings.Contains(l, "rows_out=50"):
			ended++
		case strings.Contains(l, "shutting down"):
			shutdown++
		}
	}
	if n := strings.Count(stderr, "small.csv"); n != 2 && !t.Failed() {
		t.Log(stderr)
		t.Errorf("the file is named on %d log lines, want 2 (start and end)", n)
	}
	if started != 1 || ended != 1 || shutdown != 1 {
		t.Fatalf("started %d, ended %d, shutdown %d lines; stderr:\n%s", started, ended, shutdown, stderr)
	}
	// Loading the same reference again says it was skipped and why.
	code, stdout2, stderr2 := cli(t, nil, "reference", "load", "--data", data, fin)
	if out := stdout2 + stderr2; code != 0 || !strings.Contains(out, "unchanged") || !strings.Contains(out, "current version") {
		t.Fatalf("unchanged reference: exit %d\n%s", code, out)
	}
}

// readEmail parses an .eml with net/mail and mime/multipart and returns
// its subject and decoded text and HTML parts.
func readEmail(t *testing.T, path string) (subject, text, html string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msg, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	if subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return subject, text, html
		}
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = p
		if p.Header.Get("Content-Transfer-Encoding") == "base64" {
			r = base64.NewDecoder(base64.StdEncoding, p)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
			html = string(body)
		} else {
			text = string(body)
		}
	}
}

// TestEmailLinksAndNamesEndToEnd: a file whose name carries U+202E runs
// through `sluice run`; its email shows the name with the character made
// visible (subject and both parts), and every link in the decoded email
// is the signed one: here the file URL of the output and error report.
func TestEmailLinksAndNamesEndToEnd(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	name := "invoice\u202Egpj.csv"
	in := filepath.Join(t.TempDir(), name)
	lines, _ := os.ReadFile(orders)
	os.WriteFile(in, []byte(strings.Join(strings.SplitAfter(string(lines), "\n")[:31], "")), 0o644)
	data := t.TempDir()
	code, stdout, stderr := cli(t, nil, "run", "--json", "--data", data, "--reference", fin, in)
	m := jsonOut(t, stdout)
	if code != 0 || m["status"] != "completed" {
		t.Fatalf("exit %d %v %s", code, m, stderr)
	}
	subject, text, html := readEmail(t, m["email"].(string))
	for what, s := range map[string]string{"subject": subject, "text": text, "html": stdhtml.UnescapeString(html)} {
		if strings.ContainsRune(s, '\u202E') || !strings.Contains(s, "invoice<U+202E>gpj.csv") {
			t.Errorf("%s does not show the name neutralised:\n%s", what, s)
		}
	}
	// Every file the run wrote is readable beyond its owner (0644).
	filepath.Walk(data, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && info.Mode().Perm() != 0o644 {
			t.Errorf("%s is %v, want 0644", p, info.Mode().Perm())
		}
		return nil
	})
	want := map[string]bool{m["output"].(string): true, m["errors"].(string): true}
	var found []string
	found = append(found, regexp.MustCompile(`file://\S+`).FindAllString(text, -1)...)
	for _, h := range regexp.MustCompile(`href="([^"]+)"`).FindAllStringSubmatch(html, -1) {
		found = append(found, strings.ReplaceAll(h[1], "&amp;", "&"))
	}
	if len(found) != 4 {
		t.Fatalf("%d links in the email, want 4: %q", len(found), found)
	}
	for _, l := range found {
		u, err := url.Parse(l)
		if err != nil || u.Scheme != "file" || !want[u.Path] {
			t.Errorf("link %q is not one of %v", l, want)
		}
	}
}

// TestProgressBarEndsAtFull runs sluice run on a terminal (a pty made by
// util-linux's script) and checks the bar's last frame before it clears
// shows the whole batch: "completed 100% … (10/10)", not an earlier
// sample such as 60% (6/10).
func TestProgressBarEndsAtFull(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) to make a pty")
	}
	orders, fin := testenv.SeedSample(t)
	dir := t.TempDir()
	data, cfg := filepath.Join(dir, "data"), filepath.Join(dir, "cfg.yaml")
	os.WriteFile(cfg, []byte("chunkRows: 1000\n"), 0o644)
	if code, _, stderr := cli(t, nil, "reference", "load", "--data", data, fin); code != 0 {
		t.Fatal(stderr)
	}
	out, err := exec.Command(script, "-qec", strings.Join([]string{bin, "run", "--data", data, "--config", cfg, orders}, " "), "/dev/null").Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var frames []string
	for _, f := range regexp.MustCompile(`[\r\n]+`).Split(string(out), -1) {
		if strings.Contains(f, "%") && strings.Contains(f, "/10)") {
			frames = append(frames, strings.TrimSpace(f))
		}
	}
	if len(frames) == 0 {
		t.Fatalf("no progress frames on the terminal:\n%q", out)
	}
	last := frames[len(frames)-1]
	if !strings.HasPrefix(last, "completed") || !strings.Contains(last, "100%") || !strings.Contains(last, "(10/10)") {
		t.Fatalf("last frame %q; frames %q", last, frames)
	}
	// Then the line is cleared, and the result stands on its own line.
	tail := string(out)[strings.LastIndex(string(out), "(10/10)"):]
	if !regexp.MustCompile(`\r {20,}\r`).MatchString(tail) || !regexp.MustCompile(`(?m)^Batch \w+ completed`).MatchString(strings.ReplaceAll(tail, "\r", "\n")) {
		t.Fatalf("after the last frame: %q", tail)
	}
}

// TestLoopbackOnly: which --addr values count as this machine only.
func TestLoopbackOnly(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.1.2.3:80": true, "[::1]:8080": true, "localhost:8080": true, "LOCALHOST:1": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.1:8080": false, "192.168.1.5:80": false,
		"no-such-host.invalid:80": false, "": false,
	} {
		if got := loopbackOnly(addr); got != want {
			t.Errorf("loopbackOnly(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestRefuseBadTraceURL: a SLUICE_TRACE_URL that could not link a trace
// (no {traceId}, not http or https) stops console and serve at start.
func TestRefuseBadTraceURL(t *testing.T) {
	for _, cmd := range []string{"console", "serve"} {
		for _, u := range []string{"https://grafana.example/explore", "javascript:x({traceId})"} {
			data := filepath.Join(t.TempDir(), "d")
			code, _, stderr := cli(t, []string{"SLUICE_TRACE_URL=" + u}, cmd, "--data", data, "--addr", "127.0.0.1:0")
			if code != 2 || !strings.Contains(stderr, "SLUICE_TRACE_URL") {
				t.Errorf("%s with SLUICE_TRACE_URL=%s: exit %d\n%s", cmd, u, code, stderr)
			}
		}
	}
}
