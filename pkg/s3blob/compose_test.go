package s3blob

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func showPlan(ps []segment) string {
	var b strings.Builder
	for _, p := range ps {
		if p.copy {
			q := p.pieces[0]
			fmt.Fprintf(&b, "[copy %d@%d+%d]", q.src, q.off, q.n)
			continue
		}
		b.WriteString("[up")
		for _, q := range p.pieces {
			if q.src < 0 {
				fmt.Fprintf(&b, " h%d", q.n)
			} else {
				fmt.Fprintf(&b, " %d@%d+%d", q.src, q.off, q.n)
			}
		}
		b.WriteString("]")
	}
	return b.String()
}

func TestPlanSegments(t *testing.T) {
	const lo, hi = 10, 25
	for _, c := range []struct {
		head  int64
		sizes []int64
		want  string
	}{
		{3, nil, "[up h3]"},
		{0, nil, "[up]"},
		{3, []int64{4, 4}, "[up h3 0@0+4 1@0+4]"},
		// The head's part takes only the 7 bytes it lacks of the first
		// source; the rest of that source is copied.
		{3, []int64{12, 12, 12}, "[up h3 0@0+12][copy 1@0+12][copy 2@0+12]"},
		{3, []int64{20, 12}, "[up h3 0@0+7][copy 0@7+13][copy 1@0+12]"},
		// Short parts between big ones are gathered, topped up from the
		// next where its rest can still be copied.
		{3, []int64{12, 4, 4, 12, 12, 1}, "[up h3 0@0+12][up 1@0+4 2@0+4 3@0+2][copy 3@2+10][copy 4@0+12][up 5@0+1]"},
		{0, []int64{12, 4, 30, 1}, "[copy 0@0+12][up 1@0+4 2@0+6][copy 2@6+24][up 3@0+1]"},
		{0, []int64{12, 0, 12}, "[copy 0@0+12][copy 2@0+12]"},
		{0, []int64{0, 4}, "[up 1@0+4]"},
		// A source over the largest part is copied in equal ranges.
		{0, []int64{60}, "[copy 0@0+20][copy 0@20+20][copy 0@40+20]"},
		{0, []int64{26}, "[copy 0@0+13][copy 0@13+13]"},
	} {
		if got := showPlan(planSegments(c.head, c.sizes, lo, hi)); got != c.want {
			t.Errorf("planSegments(%d, %v) = %s, want %s", c.head, c.sizes, got, c.want)
		}
	}
}

// TestPlanSegmentsValid checks the rules S3 and the merge need on random
// inputs, mostly parts under the minimum as rejected rows leave them: the
// pieces cover the head and every source once, in order; every part but
// the last is within [lo, hi]; a copy is one range of one source.
func TestPlanSegmentsValid(t *testing.T) {
	const lo, hi = 100, 1000
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		head := rng.Int64N(3) * rng.Int64N(150)
		sizes := make([]int64, rng.IntN(12))
		for i := range sizes {
			switch rng.IntN(4) {
			case 0:
				sizes[i] = 0
			case 1:
				sizes[i] = rng.Int64N(3 * hi)
			default:
				sizes[i] = rng.Int64N(2 * lo)
			}
		}
		plan := planSegments(head, sizes, lo, hi)
		if err := checkPlan(plan, head, sizes, lo, hi); err != nil {
			t.Fatalf("planSegments(%d, %v) = %s: %v", head, sizes, showPlan(plan), err)
		}
	}
}

func checkPlan(plan []segment, head int64, sizes []int64, lo, hi int64) error {
	src, off := -1, int64(0) // where the next piece must start
	if head == 0 {
		src = 0
	}
	for i, p := range plan {
		var sum int64
		for _, q := range p.pieces {
			for src >= 0 && src < len(sizes) && off == sizes[src] {
				src, off = src+1, 0
			}
			if q.src != src || q.off != off || q.n <= 0 {
				return fmt.Errorf("part %d: piece %+v, want one at source %d offset %d", i, q, src, off)
			}
			off += q.n
			if src < 0 {
				src, off = 0, 0
			}
			sum += q.n
		}
		if sum != p.size || (p.copy && len(p.pieces) != 1) {
			return fmt.Errorf("part %d: size %d, pieces add to %d", i, p.size, sum)
		}
		if i < len(plan)-1 && (p.size < lo || p.size > hi) {
			return fmt.Errorf("part %d of %d has %d bytes", i, len(plan), p.size)
		}
	}
	for src >= 0 && src < len(sizes) && off == sizes[src] {
		src, off = src+1, 0
	}
	if src != len(sizes) {
		return fmt.Errorf("the plan stops at source %d offset %d", src, off)
	}
	return nil
}

// TestPartSizeFor: a streamed upload of a known total fits S3's 10,000
// parts whatever its size (the configured 8 MiB parts stop at ~78 GiB),
// with parts no smaller than configured and no larger than S3's 5 GiB.
func TestPartSizeFor(t *testing.T) {
	const mib, gib = int64(1 << 20), int64(1 << 30)
	base := 8 * mib
	for _, c := range []struct{ total, want int64 }{
		{-1, base},
		{0, base},
		{1000, base},
		{78 * gib, base},                   // 8 MiB × 10,000 = 78.1 GiB
		{79 * gib, 9 * mib},                // just past: 8.09 MiB, rounded up to 9
		{100 * gib, 11 * mib},              // 10.24 MiB
		{5 * 1024 * gib, 525 * mib},        // S3's largest object: 524.3 MiB
		{100 * 1024 * gib, 5 * 1024 * mib}, // capped at S3's largest part
	} {
		got := partSizeFor(c.total, base)
		if got != c.want {
			t.Errorf("partSizeFor(%d) = %d MiB, want %d MiB", c.total, got/mib, c.want/mib)
		}
		if c.total > 0 && c.total <= 5*1024*gib && (c.total+got-1)/got > maxParts {
			t.Errorf("partSizeFor(%d) = %d: %d parts, over S3's %d", c.total, got, (c.total+got-1)/got, maxParts)
		}
	}
}
