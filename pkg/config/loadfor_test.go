package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
)

func TestLoadForAWSChunkRows(t *testing.T) {
	dir := t.TempDir()
	file := func(s string) string {
		p := filepath.Join(dir, fmt.Sprintf("c%d.yaml", len(s)))
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	feeds := "feeds:\n  - name: a\n    prefix: a/\n    chunkRows: 50\n  - name: b\n    prefix: b/\n"
	for _, c := range []struct {
		path, backend string
		want          []int // top level, then each feed
	}{
		{"", "aws", []int{config.AWSChunkRows}},
		{"", "local", []int{10000}},
		{file("chunkRows: 500\n"), "aws", []int{500}},
		{file(feeds), "aws", []int{config.AWSChunkRows, 50, config.AWSChunkRows}},
		{file(feeds), "local", []int{10000, 50, 10000}},
	} {
		p, err := config.LoadFor(c.path, c.backend)
		if err != nil {
			t.Fatal(err)
		}
		got := []int{p.ChunkRows}
		for _, f := range p.Feeds {
			got = append(got, f.ChunkRows)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("LoadFor(%q, %s): chunkRows %v, want %v", c.path, c.backend, got, c.want)
		}
	}
}
