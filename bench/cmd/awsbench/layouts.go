package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/cost"
)

// layout is one way of laying the batch out in S3: a pipeline
// configuration for the services.
type layout struct {
	name, about, config string
}

// layouts: "copy-chunks" is the layout when issue 13 was filed (the split
// copies every chunk to to_process/, 10,000-row chunks whose ~1.2 MB parts
// are too small to copy, so the merge uploads every byte again); "ranges"
// is byte-range chunks at the old chunk size; "default" is what the AWS
// services do now.
var layouts = []layout{
	{"copy-chunks", "chunks copied to to_process/, chunkRows 10000 (the layout issue 13 started from)", "copyChunks: true\nchunkRows: 10000\n"},
	{"ranges", "chunks as byte ranges, chunkRows 10000", "chunkRows: 10000\n"},
	{"default", fmt.Sprintf("the AWS default: chunks as byte ranges, chunkRows %d, merge by UploadPartCopy", config.AWSChunkRows), ""},
}

func layoutNames() []string {
	var out []string
	for _, l := range layouts {
		out = append(out, l.name)
	}
	return out
}

func pickLayouts(list string) ([]layout, error) {
	var out []layout
	for name := range strings.SplitSeq(list, ",") {
		found := false
		for _, l := range layouts {
			if l.name == strings.TrimSpace(name) {
				out, found = append(out, l), true
			}
		}
		if !found {
			return nil, fmt.Errorf("-layouts: no layout %q (have %s)", name, strings.Join(layoutNames(), ", "))
		}
	}
	return out, nil
}

// result is one layout's run.
type result struct {
	layout layout
	rows   int
	chunks int
	wall   time.Duration
	ops    awstest.Ops
	sums   []string // SHA-256 of the output and the error report
}

// s3Columns are the operations the table shows, in this order; any other
// operation seen is added after them.
var s3Columns = []string{"PutObject", "UploadPart", "UploadPartCopy", "CopyObject", "CreateMultipartUpload",
	"CompleteMultipartUpload", "GetObject", "HeadObject", "ListObjectsV2", "DeleteObject"}

// printS3 writes the services' S3 traffic per 1M rows by operation for
// every layout (calls, request bytes, response bytes, dollars at list
// price), their totals, and each layout's PUT bytes and request dollars
// against the first layout's.
func printS3(w io.Writer, rs []result) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nS3 on the wire, the services only (upload excluded), per 1M rows\n")
	fmt.Fprintf(w, "%-26s %-12s %12s %12s %12s %10s\n", "operation", "layout", "calls", "sent MB", "received MB", "dollars")
	ops := append([]string(nil), s3Columns...)
	for _, r := range rs {
		for _, op := range r.ops.Names() {
			if !slices.Contains(ops, op) {
				ops = append(ops, op)
			}
		}
	}
	for _, op := range ops {
		for _, r := range rs {
			t, f := r.ops[op], 1e6/float64(r.rows)
			if t == (awstest.OpTraffic{}) {
				continue
			}
			fmt.Fprintf(w, "%-26s %-12s %12.1f %12.2f %12.2f %10.5f\n", op, r.layout.name,
				float64(t.Calls)*f, float64(t.In)*f/1e6, float64(t.Out)*f/1e6, cost.S3Request(op, float64(t.Calls)*f))
		}
	}
	base := totals(rs[0])
	for _, r := range rs {
		t := totals(r)
		fmt.Fprintf(w, "%-26s %-12s %12.1f %12.2f %12.2f %10.5f   PUT bytes %.0f%% of %s, $%.5f saved per 1M rows (%d chunks, %.1fs)\n",
			"total", r.layout.name, t.calls, t.put/1e6, t.got/1e6, t.dollars,
			100*t.put/base.put, rs[0].layout.name, base.dollars-t.dollars, r.chunks, r.wall.Seconds())
	}
}

type total struct{ calls, put, got, dollars float64 }

// totals sums a layout's traffic per 1M rows; put is the bytes sent in
// requests (PutObject, UploadPart: what S3 stores anew).
func totals(r result) total {
	var t total
	f := 1e6 / float64(r.rows)
	for op, v := range r.ops {
		t.calls += float64(v.Calls) * f
		t.put += float64(v.In) * f
		t.got += float64(v.Out) * f
		t.dollars += cost.S3Request(op, float64(v.Calls)*f)
	}
	return t
}
