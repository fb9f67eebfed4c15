package main

import (
	"io"

	"github.com/schollz/progressbar/v3"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// chunkBar is sluice run's progress bar on a terminal: chunks done over
// chunks, with the batch's state as its label.
//
// The library's "clear on finish" erases the bar without drawing its end,
// and progress is sampled, so the last frame a person saw was an earlier
// sample (60% (6/10)) just before the bar vanished. done draws the end
// first: 100% for a completed batch, then clears the line so that the
// result is printed on its own.
type chunkBar struct {
	bar   *progressbar.ProgressBar
	state sluice.State // the label shown
}

func newChunkBar(w io.Writer) *chunkBar {
	return &chunkBar{bar: progressbar.NewOptions(-1, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("splitting"),
		progressbar.OptionShowCount(), progressbar.OptionSetItsString("chunks"),
		progressbar.OptionSetPredictTime(false), progressbar.OptionFullWidth()), state: sluice.StateSplitting}
}

// update draws one sample of the batch.
func (c *chunkBar) update(b sluice.Batch) {
	if c == nil {
		return
	}
	if b.TotalChunks >= 0 && c.bar.GetMax() != b.TotalChunks {
		c.bar.ChangeMax(b.TotalChunks)
	}
	// The count first, then the label: each draws a frame, and a label
	// drawn first would show the new state with the old count.
	c.bar.Set(b.DoneChunks)
	if b.State != c.state {
		c.state = b.State
		c.bar.Describe(string(b.State))
	}
}

// done draws the batch's last frame, when it completed, and clears the
// bar. b is the zero Batch when the run stopped without a result.
func (c *chunkBar) done(b sluice.Batch) {
	if c == nil {
		return
	}
	if b.State == sluice.StateCompleted && b.TotalChunks > 0 {
		c.update(b) // all chunks done: the library draws its final frame
	}
	c.bar.Exit()
	c.bar.Clear()
}
