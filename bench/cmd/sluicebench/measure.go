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
	Stdout []byte
	Stderr []byte
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
	err := cmd.Run()
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
