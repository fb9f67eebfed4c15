package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/awstest"
)

// The table scales to 1M rows and compares PUT bytes and request dollars
// with the first layout.
func TestPrintS3(t *testing.T) {
	rs := []result{
		{layout: layout{name: "copy-chunks"}, rows: 500_000, chunks: 50, ops: awstest.Ops{
			"PutObject": {Calls: 100, In: 150e6}, "GetObject": {Calls: 150, Out: 130e6}}},
		{layout: layout{name: "default"}, rows: 500_000, chunks: 5, ops: awstest.Ops{
			"PutObject": {Calls: 10, In: 60e6}, "UploadPartCopy": {Calls: 4}, "GetObject": {Calls: 15, Out: 90e6}}},
	}
	var b bytes.Buffer
	printS3(&b, rs)
	out := strings.Join(strings.Fields(b.String()), " ") // the numbers matter, not the padding
	for _, want := range []string{
		"PutObject                  copy-chunks        200.0       300.00         0.00    0.00100",
		"UploadPartCopy             default              8.0         0.00         0.00    0.00004",
		"total                      default              58.0       120.00       180.00    0.00015   PUT bytes 40% of copy-chunks, $0.00097 saved per 1M rows (5 chunks",
	} {
		if want = strings.Join(strings.Fields(want), " "); !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if _, err := pickLayouts("default,nope"); err == nil {
		t.Error("an unknown layout was accepted")
	}
}
