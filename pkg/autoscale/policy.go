// Package autoscale decides how many handlers a stage should run, from its
// queue's depth: AWS's "backlog per task" approach, not raw queue length.
// The same pure policy sizes the embedded pipeline's pools (Controller) and
// is the formula the Terraform's target-tracking policies use on ECS.
package autoscale

import (
	"math"
	"time"
)

// Policy is the scaling rule of one stage.
type Policy struct {
	Min, Max int
	// TargetLatency is how long a message may wait for a handler: the
	// acceptable backlog per handler is TargetLatency / average seconds per
	// message.
	TargetLatency time.Duration
	// ScaleInCooldown is how long after the last change the policy waits
	// before removing handlers; adding is never delayed.
	ScaleInCooldown time.Duration
}

// Input is what the policy sees at one moment.
type Input struct {
	Backlog  int // visible messages
	InFlight int // messages being handled
	Current  int // handlers now
	// AvgSeconds is the measured average processing time per message;
	// zero when nothing was measured yet.
	AvgSeconds float64
}

// State is what the policy remembers between decisions.
type State struct {
	LastChange time.Time
}

// Desired returns the handler count for in at now, and updates st.
func (p Policy) Desired(in Input, now time.Time, st *State) int {
	lo, hi := max(p.Min, 0), max(p.Max, max(p.Min, 0))
	work := in.Backlog + in.InFlight
	var want int
	switch {
	case work == 0:
		want = lo
	case in.AvgSeconds <= 0 || p.TargetLatency <= 0:
		// Nothing measured yet: one handler per message, as fast as allowed.
		want = work
	default:
		perHandler := p.TargetLatency.Seconds() / in.AvgSeconds // acceptable backlog per handler
		want = int(math.Ceil(float64(work) / max(perHandler, 1)))
	}
	if in.InFlight > 0 {
		want = max(want, 1) // never below the work already in hand
	}
	want = min(max(want, lo), hi)
	if want < in.Current && !st.LastChange.IsZero() && now.Sub(st.LastChange) < p.ScaleInCooldown {
		want = in.Current
	}
	if want != in.Current {
		st.LastChange = now
	}
	return want
}
