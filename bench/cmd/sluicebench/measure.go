package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// measured is one child process: its wall time, measured around the exec
// from just before the start to just after the wait, and its peak resident
// set (ru_maxrss, which Linux reports in KiB).
type measured struct {
	Start  time.Time
	Wall   time.Duration
	MaxRSS int64 // bytes
	// MaxRssAnon is the largest RssAnon sampled from /proc/PID/status
	// every 10 ms (0 where /proc is missing). A sample can miss a peak
	// shorter than the interval.
	MaxRssAnon int64
	Stdout     []byte
	Stderr     []byte
}

// measure runs name with args, extra environment variables added to ours.
// A non-zero exit is an error that quotes the end of stderr.
func measure(ctx context.Context, extraEnv []string, name string, args ...string) (measured, error) {
	var m measured
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if len(extraEnv) > 0 {
		cmd.Env = append(os.Environ(), extraEnv...)
	}
	m.Start = time.Now()
	err := cmd.Start()
	if err == nil {
		stop := make(chan struct{})
		peak := make(chan int64)
		go sampleRssAnon(cmd.Process.Pid, stop, peak)
		err = cmd.Wait()
		close(stop)
		m.MaxRssAnon = <-peak
	}
	m.Wall = time.Since(m.Start)
	m.Stdout, m.Stderr = out.Bytes(), errb.Bytes()
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			m.MaxRSS = ru.Maxrss * 1024
		}
	}
	if err != nil {
		return m, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail(m.Stderr, 2000))
	}
	if m.MaxRSS == 0 {
		return m, errors.New("no rusage for " + name)
	}
	return m, nil
}

// tail is the last n bytes of b, trimmed, for error messages.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

const mib = 1 << 20

// sampleRssAnon reads pid's RssAnon until stop closes and sends the
// largest value seen, in bytes.
func sampleRssAnon(pid int, stop <-chan struct{}, peak chan<- int64) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	var top int64
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if v := rssAnon(path); v > top {
			top = v
		}
		select {
		case <-stop:
			peak <- top
			return
		case <-t.C:
		}
	}
}

// rssAnon is the RssAnon line of a /proc status file in bytes, 0 when
// it cannot be read (the process has exited, or no /proc).
func rssAnon(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb)
			return kb * 1024
		}
	}
	return 0
}
