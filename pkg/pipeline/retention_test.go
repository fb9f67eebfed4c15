package pipeline_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// TestRemovePrefixesRemovesExactlyThem: the deletes run several at a time,
// and still remove every object under the prefixes and nothing else, and
// report each once with its size; a dry run only lists.
func TestRemovePrefixesRemovesExactlyThem(t *testing.T) {
	blobs, err := fsblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := sluice.Batch{ID: "b1"}
	var want []string
	put := func(key string) {
		if _, err := blobs.Put(t.Context(), key, strings.NewReader(key)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 150 {
		for _, p := range pipeline.IntermediatePrefixes(b) {
			key := fmt.Sprintf("%spart-%05d.csv", p, i)
			put(key)
			want = append(want, key)
		}
	}
	kept := []string{"b1/output/completed/output.csv", "b2/output/parts/part-00000.csv", "input/b1.csv"}
	for _, k := range kept {
		put(k)
	}
	for _, dry := range []bool{true, false} {
		r, err := pipeline.RemovePrefixes(t.Context(), blobs, pipeline.IntermediatePrefixes(b), dry)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		var bytes int64
		for _, o := range r.Objects {
			got = append(got, o.Key)
			bytes += int64(len(o.Key))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) || r.Bytes != bytes {
			t.Fatalf("dry run %v: removed %d objects (%d bytes), want the %d intermediates (%d bytes)", dry, len(got), r.Bytes, len(want), bytes)
		}
	}
	left, err := blobs.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range left {
		keys = append(keys, o.Key)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, kept) {
		t.Fatalf("left %v, want %v", keys, kept)
	}
}
