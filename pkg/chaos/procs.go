package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/pkg/pipeline"
)

// slot is one service instance the supervisor keeps running: the splitter,
// worker#1 … worker#N, the merger, the notifier.
type slot struct {
	name, stage, bin string
	starts           int
	cur              *proc // nil while down
	pending          bool  // a restart is scheduled
}

type proc struct {
	cmd     *exec.Cmd
	log     *os.File
	done    chan struct{}
	killed  bool // by the supervisor
	stopped bool // SIGTERM at the end
}

type kill struct {
	at    time.Time
	stage string
}

// supervisor starts the services, kills them at random and restarts them.
type supervisor struct {
	o      Options
	env    []string
	logDir string
	logf   func(string, ...any)

	mu       sync.Mutex
	rng      *rand.Rand
	slots    []*slot
	kills    map[string]int
	killLog  []kill
	restarts int
	exits    []string
	stopping bool
	wg       sync.WaitGroup
}

func newSupervisor(o Options, env []string, logDir string, rng *rand.Rand, logf func(string, ...any)) *supervisor {
	s := &supervisor{o: o, env: env, logDir: logDir, rng: rng, logf: logf, kills: map[string]int{}}
	add := func(name, stage string) {
		s.slots = append(s.slots, &slot{name: name, stage: stage, bin: o.Bins[stage]})
	}
	for _, st := range pipeline.Topology {
		if st.Concurrency != 0 {
			add(st.Service, st.Service)
			continue
		}
		// The stage that scales out (chunk workers) runs o.Workers processes.
		for i := 1; i <= o.Workers; i++ {
			add(fmt.Sprintf("%s#%d", st.Service, i), st.Service)
		}
	}
	return s
}

// startAll starts every service and waits until each is ready (has
// built its adapters and is receiving), so the kills meet a running
// pipeline rather than one still starting.
func (s *supervisor) startAll(ctx context.Context) error {
	if err := os.MkdirAll(s.logDir, 0o755); err != nil {
		return err
	}
	s.mu.Lock()
	var addrs []string
	for _, sl := range s.slots {
		addr, err := freeAddr()
		if err != nil {
			s.mu.Unlock()
			return err
		}
		addrs = append(addrs, addr)
		if err := s.startLocked(sl, "SLUICE_HTTP_ADDR="+addr); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	s.mu.Unlock()
	deadline := time.Now().Add(time.Minute)
	for i, sl := range s.slots {
		for {
			resp, err := http.Get("http://" + addrs[i] + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("chaos: %s not ready within a minute: %s", sl.name, tailFile(sl.cur.log.Name(), 600))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startLocked starts sl's process; s.mu is held.
func (s *supervisor) startLocked(sl *slot, env ...string) error {
	sl.starts++
	logName := filepath.Join(s.logDir, fmt.Sprintf("%s.%02d.log", strings.ReplaceAll(sl.name, "#", ""), sl.starts))
	f, err := os.Create(logName)
	if err != nil {
		return err
	}
	cmd := exec.Command(sl.bin)
	cmd.Env = append(append(append(os.Environ(), s.env...), "SLUICE_HTTP_ADDR=127.0.0.1:0"), env...)
	if st, _ := pipeline.StageOf(sl.stage); st.Concurrency == 0 && s.o.Concurrency > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("SLUICE_CONCURRENCY=%d", s.o.Concurrency))
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("chaos: starting %s: %w", sl.name, err)
	}
	p := &proc{cmd: cmd, log: f, done: make(chan struct{})}
	sl.cur, sl.pending = p, false
	s.wg.Add(1)
	go s.watch(sl, p)
	return nil
}

// watch waits for a process to end and restarts its slot unless the run
// is stopping.
func (s *supervisor) watch(sl *slot, p *proc) {
	defer s.wg.Done()
	err := p.cmd.Wait()
	p.log.Close()
	close(p.done)
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl.cur == p {
		sl.cur = nil
	}
	if s.stopping || p.stopped {
		return
	}
	delay := time.Second
	if p.killed {
		delay = s.o.MinRestart + time.Duration(s.rng.Int64N(int64(s.o.MaxRestart-s.o.MinRestart)+1))
	} else {
		s.exits = append(s.exits, fmt.Sprintf("%s (pid %d, %v; log %s): %s", sl.name, p.cmd.Process.Pid, err, p.log.Name(), tailFile(p.log.Name(), 600)))
		s.logf("%s exited by itself: %v; restarting", sl.name, err)
	}
	sl.pending = true
	time.AfterFunc(delay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stopping {
			sl.pending = false
			return
		}
		if err := s.startLocked(sl); err != nil {
			s.exits = append(s.exits, fmt.Sprintf("%s: restart failed: %v", sl.name, err))
			sl.pending = false
			return
		}
		s.restarts++
	})
}

// killLoop delivers n SIGKILLs to random running services. Each kill
// waits a random gap after the one before, and until the batch has reached
// a random point of its progress (one drawn in each n-th of the batch), so
// that the kills spread over the batch's life however fast it runs. Once the batch
// is over, the kills left only wait their gaps.
func (s *supervisor) killLoop(ctx context.Context, n int, progress func() (float64, bool)) {
	s.mu.Lock()
	targets := make([]float64, n)
	for i := range targets {
		// One random point in each of n equal slices: spread, not clustered.
		targets[i] = 0.97 * (float64(i) + s.rng.Float64()) / float64(n)
	}
	s.mu.Unlock()
	last := time.Now()
	for k := 0; k < n; {
		s.mu.Lock()
		gap := s.o.MinGap + time.Duration(s.rng.Int64N(int64(s.o.MaxGap-s.o.MinGap)+1))
		s.mu.Unlock()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			p, done := progress()
			if (k == 0 || time.Since(last) >= gap) && (done || p >= targets[k]) {
				break
			}
		}
		s.mu.Lock()
		var up []*slot
		for _, sl := range s.slots {
			if sl.cur != nil && !sl.cur.killed && slices.Contains(s.o.Targets, sl.stage) {
				up = append(up, sl)
			}
		}
		if len(up) == 0 {
			s.mu.Unlock()
			continue
		}
		sl := up[s.rng.IntN(len(up))]
		p := sl.cur
		p.killed = true
		err := p.cmd.Process.Signal(syscall.SIGKILL)
		k++
		last = time.Now()
		s.kills[sl.stage]++
		s.killLog = append(s.killLog, kill{at: last, stage: sl.stage})
		s.mu.Unlock()
		prog, done := progress()
		when := fmt.Sprintf("at %.0f%% of the batch", 100*prog)
		if done {
			when = "after the batch"
		}
		if err != nil {
			s.logf("kill %d/%d: %s (pid %d): %v", k, n, sl.name, p.cmd.Process.Pid, err)
		} else {
			s.logf("kill %d/%d: SIGKILL %s (pid %d) %s", k, n, sl.name, p.cmd.Process.Pid, when)
		}
		<-p.done
	}
}

func (s *supervisor) killsBefore(t time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range s.killLog {
		if k.at.Before(t) {
			n++
		}
	}
	return n
}

// killedSince reports whether stage was killed at or after t.
func (s *supervisor) killedSince(stage string, t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.killLog {
		if k.stage == stage && !k.at.Before(t) {
			return true
		}
	}
	return false
}

func (s *supervisor) restartCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

func (s *supervisor) selfExits() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.exits...)
}

// waitAllUp waits until every slot has a process again.
func (s *supervisor) waitAllUp(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		s.mu.Lock()
		var down []string
		for _, sl := range s.slots {
			// A process killed but not yet reaped is still sl.cur:
			// down until its restart replaces it.
			if sl.cur == nil || sl.cur.killed || sl.pending {
				down = append(down, sl.name)
			}
		}
		s.mu.Unlock()
		if len(down) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("services not running again after the kills: %s", strings.Join(down, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopAll sends SIGTERM to every service and waits; it reports whether all
// stopped in time (the rest are killed).
func (s *supervisor) stopAll(within time.Duration) bool {
	s.mu.Lock()
	s.stopping = true
	var ps []*proc
	var names []string
	for _, sl := range s.slots {
		if sl.cur != nil {
			sl.cur.stopped = true
			sl.cur.cmd.Process.Signal(syscall.SIGTERM)
			ps = append(ps, sl.cur)
			names = append(names, sl.name)
		}
	}
	s.mu.Unlock()
	ok := true
	deadline := time.After(within)
	for i, p := range ps {
		select {
		case <-p.done:
		case <-deadline:
			ok = false
			s.logf("%s did not stop after SIGTERM; killing it", names[i])
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	s.wg.Wait()
	return ok
}

// killSummary is "splitter 5, worker 8, …" in pipeline order.
func killSummary(k map[string]int) string {
	var parts []string
	keys := make([]string, 0, len(k))
	for s := range k {
		keys = append(keys, s)
	}
	sort.SliceStable(keys, func(i, j int) bool { return stageIndex(keys[i]) < stageIndex(keys[j]) })
	for _, s := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", s, k[s]))
	}
	return strings.Join(parts, ", ")
}

func stageIndex(s string) int {
	for i, st := range Stages {
		if st == s {
			return i
		}
	}
	return len(Stages)
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
