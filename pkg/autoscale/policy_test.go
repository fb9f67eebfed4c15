package autoscale

import (
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	p := Policy{Min: 1, Max: 10, TargetLatency: 10 * time.Second, ScaleInCooldown: time.Minute}
	t0 := time.Unix(1_000_000, 0)
	cases := []struct {
		name string
		p    Policy
		in   Input
		st   State
		now  time.Time
		want int
	}{
		{"empty queue goes to min", p, Input{Current: 1}, State{}, t0, 1},
		{"empty queue, zero min", Policy{Min: 0, Max: 4, TargetLatency: time.Second}, Input{Current: 0}, State{}, t0, 0},
		{"zero min wakes on backlog", Policy{Min: 0, Max: 4, TargetLatency: time.Second}, Input{Backlog: 1, Current: 0, AvgSeconds: 0.1}, State{}, t0, 1},
		{"in-flight only keeps a handler", Policy{Min: 0, Max: 4, TargetLatency: time.Second}, Input{InFlight: 1, Current: 1, AvgSeconds: 0.01}, State{}, t0, 1},
		{"backlog per handler", p, Input{Backlog: 95, InFlight: 5, Current: 1, AvgSeconds: 0.5}, State{}, t0, 5}, // 100 msgs, 20 per handler
		{"clamped to max", p, Input{Backlog: 10000, Current: 2, AvgSeconds: 1}, State{}, t0, 10},                 // 1000 wanted
		{"nothing measured: one per message", p, Input{Backlog: 3, Current: 1}, State{}, t0, 3},
		{"cooldown holds scale-in", p, Input{Backlog: 0, Current: 8}, State{LastChange: t0.Add(-30 * time.Second)}, t0, 8},
		{"after cooldown scale in", p, Input{Backlog: 0, Current: 8}, State{LastChange: t0.Add(-61 * time.Second)}, t0, 1},
		{"scale out ignores cooldown", p, Input{Backlog: 100, Current: 2, AvgSeconds: 1}, State{LastChange: t0.Add(-time.Second)}, t0, 10},
		{"max below min is min", Policy{Min: 3, Max: 1}, Input{Backlog: 100, Current: 3}, State{}, t0, 3},
	}
	for _, c := range cases {
		st := c.st
		if got := c.p.Desired(c.in, c.now, &st); got != c.want {
			t.Errorf("%s: Desired = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestCooldownClockStartsAtChange(t *testing.T) {
	p := Policy{Min: 1, Max: 10, TargetLatency: time.Second, ScaleInCooldown: 10 * time.Second}
	var st State
	t0 := time.Unix(0, 0)
	if n := p.Desired(Input{Backlog: 50, Current: 1, AvgSeconds: 1}, t0, &st); n != 10 {
		t.Fatalf("scale out to %d", n)
	}
	if n := p.Desired(Input{Current: 10}, t0.Add(5*time.Second), &st); n != 10 {
		t.Fatalf("scaled in during cooldown to %d", n)
	}
	if n := p.Desired(Input{Current: 10}, t0.Add(11*time.Second), &st); n != 1 {
		t.Fatalf("after cooldown: %d", n)
	}
}
