package s3blob

import (
	"fmt"
	"testing"
)

func TestPlanSegments(t *testing.T) {
	const m = 10
	show := func(ps []segment) string {
		s := ""
		for _, p := range ps {
			if p.copy >= 0 {
				s += fmt.Sprintf("[copy %d]", p.copy)
			} else {
				s += fmt.Sprintf("[head=%v %v %d]", p.head, p.inline, p.size)
			}
		}
		return s
	}
	for _, c := range []struct {
		head  int64
		sizes []int64
		want  string
	}{
		{3, nil, "[head=true [] 3]"},
		{0, nil, "[head=false [] 0]"},
		{3, []int64{4, 4}, "[head=true [0 1] 11]"},
		// The head's part is topped up to the minimum, then big parts are copied.
		{3, []int64{12, 12, 12}, "[head=true [0] 15][copy 1][copy 2]"},
		// Short parts between big ones are gathered until the minimum.
		{3, []int64{12, 4, 4, 12, 12, 1}, "[head=true [0] 15][head=false [1 2 3] 20][copy 4][head=false [5] 1]"},
		{0, []int64{12, 0, 12}, "[copy 0][copy 2]"},
		{0, []int64{0, 4}, "[head=false [1] 4]"},
	} {
		got := show(planSegments(c.head, c.sizes, m))
		if got != c.want {
			t.Errorf("planSegments(%d, %v) = %s, want %s", c.head, c.sizes, got, c.want)
		}
		// Every part but the last reaches the minimum.
		ps := planSegments(c.head, c.sizes, m)
		for i, p := range ps[:len(ps)-1] {
			if p.size < m {
				t.Errorf("planSegments(%d, %v): part %d has %d bytes", c.head, c.sizes, i, p.size)
			}
		}
	}
}
