package autoscale

import (
	"context"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Pool is what a controller sizes: the consumer runtime's handler pool.
type Pool interface {
	SetConcurrency(n int)
	Concurrency() int
	InFlight() int
	AvgSeconds() float64
}

// Controller applies a Policy to a pool every Period, from its queue's depth.
type Controller struct {
	Policy Policy
	Period time.Duration
	Queue  sluice.Queue
	Pool   Pool
	// Report, when set, hears every decision (for the workers metrics).
	Report func(current, desired int)
	Now    func() time.Time
}

// Run decides until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	if c.Period <= 0 {
		c.Period = 5 * time.Second
	}
	now := c.Now
	if now == nil {
		now = time.Now
	}
	var st State
	t := time.NewTicker(c.Period)
	defer t.Stop()
	for {
		c.step(ctx, now(), &st)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Controller) step(ctx context.Context, now time.Time, st *State) {
	d, err := c.Queue.Depth(ctx)
	if err != nil {
		return // keep the current size; the next period tries again
	}
	cur := c.Pool.Concurrency()
	in := Input{Backlog: d.Visible + d.Delayed, InFlight: max(d.InFlight, c.Pool.InFlight()), Current: cur, AvgSeconds: c.Pool.AvgSeconds()}
	want := c.Policy.Desired(in, now, st)
	if want != cur {
		c.Pool.SetConcurrency(want)
	}
	if c.Report != nil {
		c.Report(c.Pool.Concurrency(), want)
	}
}
