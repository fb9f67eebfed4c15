package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/testenv"
)

// TestReferenceLoadAndList: a load makes a version current, the same file
// again is skipped and says so, and list shows the version, its rows and
// the batches that used it.
func TestReferenceLoadAndList(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	data := t.TempDir()
	r := runCLI(t, nil, "reference", "load", "--data", data, fin)
	if r.code != 0 {
		t.Fatalf("load: exit %d: %s", r.code, r.stderr)
	}
	again := exec.Command(bin, "reference", "load", "--data", data, fin)
	out, err := again.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "reference unchanged") {
		t.Fatalf("loading the same file again: %v\n%s", err, out)
	}
	if r := runCLI(t, nil, "run", "--json", "--data", data, orders); r.code != 0 {
		t.Fatalf("run: exit %d: %s", r.code, r.stderr)
	}
	list, err := exec.Command(bin, "reference", "list", "--data", data, "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var vs []struct {
		ID      string `json:"id"`
		Rows    int    `json:"rows"`
		Current bool   `json:"current"`
		Done    int    `json:"finishedBatches"`
		Source  string `json:"source"`
	}
	if err := json.Unmarshal(list, &vs); err != nil {
		t.Fatalf("%v\n%s", err, list)
	}
	if len(vs) != 1 || !vs[0].Current || vs[0].Rows != 10000 || vs[0].Done != 1 || vs[0].Source != "testfile_financial_data.csv" {
		t.Fatalf("reference list = %+v", vs)
	}
	text, err := exec.Command(bin, "reference", "list", "--data", data).Output()
	if err != nil || !strings.Contains(string(text), vs[0].ID) || !strings.Contains(string(text), "*") {
		t.Fatalf("reference list: %v\n%s", err, text)
	}
	bad := runCLI(t, nil, "reference", "load", "--data", data, orders)
	if bad.code == 0 || !strings.Contains(bad.stderr, `no key column "uuid"`) && !strings.Contains(bad.stderr, "reference.append") {
		t.Fatalf("loading the orders as a reference: exit %d: %s", bad.code, bad.stderr)
	}
}
