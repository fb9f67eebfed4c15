package main

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// twoFeeds is a configuration of feeds sharing dataset financials, each
// with its own delimiter, file type, output format and recipients: orders
// (CSV in, Parquet out), returns (.csv.gz, ';', JSON Lines out), stock (an
// xlsx workbook) and plain, the plain CSV feed the others' outputs are
// compared with. A further feed is one more entry.
var twoFeeds = []struct {
	name, delim, to, ext, extra string
}{
	{"orders", ",", "orders@example.com", ".csv", ", output: {format: parquet}"},
	{"returns", ";", "returns@example.com", ".csv.gz", ", output: {format: jsonl}"},
	{"stock", ",", "stock@example.com", ".xlsx", ", input: {sheet: Orders}"},
	{"plain", ",", "plain@example.com", ".csv", ""},
}

func writeFeedsConfig(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("mail: {to: [ops@example.com]}\nfeeds:\n")
	for _, f := range twoFeeds {
		fmt.Fprintf(&b, "  - {name: %s, prefix: %s/, delimiter: %q, reference: {dataset: financials}, mail: {to: [%s]}%s}\n", f.name, f.name, f.delim, f.to, f.extra)
	}
	p := filepath.Join(t.TempDir(), "feeds.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// feedFile is the first n records of the seed's orders with delim.
func feedFile(t *testing.T, orders string, n int, delim string) string {
	t.Helper()
	b, _ := os.ReadFile(orders)
	lines := strings.SplitAfter(string(b), "\n")[:n+1]
	// The seed has no quoted fields, so swapping the delimiter is exact.
	return strings.ReplaceAll(strings.Join(lines, ""), ",", delim)
}

func TestFeedsCommand(t *testing.T) {
	cfg := writeFeedsConfig(t)
	code, out, errs := cli(t, nil, "feeds", "--config", cfg, "--json")
	var rows []feedRow
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != len(twoFeeds) {
		t.Fatalf("feeds --json: exit %d\n%s%s", code, out, errs)
	}
	if rows[1].Name != "returns" || rows[1].Input != "input/returns/" || rows[1].Dataset != "financials" || rows[1].Output != "jsonl" || rows[1].To[0] != "returns@example.com" {
		t.Fatalf("feeds --json: %+v", rows[1])
	}
	code, out, _ = cli(t, nil, "feeds")
	if code != 0 || !regexp.MustCompile(`(?m)^default\s+input/\s+default\s+csv\s+1$`).MatchString(out) {
		t.Fatalf("feeds without a configuration: exit %d\n%s", code, out)
	}
	if _, out, _ = cli(t, nil, "config", "default"); strings.Contains(out, "feeds:") || !strings.Contains(out, "chunkRows: 10000") {
		t.Fatalf("config default changed:\n%s", out)
	}
	// A feed enriched over HTTP shows its API, not a dataset it does not use.
	api := filepath.Join(t.TempDir(), "api.yaml")
	os.WriteFile(api, []byte("feeds:\n  - {name: prices, prefix: p/, reference: {http: {url: \"https://prices.example/r\"}}}\n"), 0o644)
	if code, out, _ = cli(t, nil, "feeds", "--config", api); code != 0 || !regexp.MustCompile(`(?m)^prices\s+input/p/\s+http https://prices.example/r\s+csv`).MatchString(out) {
		t.Fatalf("feeds with an HTTP reference: exit %d\n%s", code, out)
	}
}

// TestRunFeed: run --feed puts the file under input/<prefix> and runs it
// with that feed's settings; without --feed, a configuration with no
// default feed is refused before anything happens.
func TestRunFeed(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	cfg, data := writeFeedsConfig(t), t.TempDir()
	if code, out, errs := cli(t, nil, "reference", "load", "--data", data, "--config", cfg, "--dataset", "financials", fin); code != 0 {
		t.Fatalf("reference load --dataset: exit %d\n%s%s", code, out, errs)
	}
	in := filepath.Join(t.TempDir(), "r.csv")
	os.WriteFile(in, []byte(feedFile(t, orders, 30, ";")), 0o644)
	code, out, errs := cli(t, nil, "run", "--data", data, "--config", cfg, "--feed", "returns", "--json", in)
	var res runResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Feed != "returns" || res.RowsOut != 30 {
		t.Fatalf("run --feed returns: exit %d %+v\n%s%s", code, res, out, errs)
	}
	if code, _, errs = cli(t, nil, "run", "--data", data, "--config", cfg, in); code == 0 || !strings.Contains(errs, "--feed") {
		t.Fatalf("run without --feed and no default feed: exit %d\n%s", code, errs)
	}
	if code, _, errs = cli(t, nil, "status", "--data", data); code != 0 {
		t.Fatal(errs)
	}
}

// TestServeTakesFeeds: one serve takes every feed at once from its drop
// folder's feed folders, each in its own file type and output format; each
// batch runs in its feed, each email goes to that feed's recipients, and
// every output equals, value for value, the plain CSV feed's output of the
// same rows (the Parquet read back by DuckDB, not our code).
func TestServeTakesFeeds(t *testing.T) {
	const n = 40
	orders, fin := testenv.SeedSample(t)
	cfg, data := writeFeedsConfig(t), t.TempDir()
	if code, out, errs := cli(t, nil, "reference", "load", "--data", data, "--config", cfg, "--dataset", "financials", fin); code != 0 {
		t.Fatalf("reference load: exit %d\n%s%s", code, out, errs)
	}
	p := start(t, []string{"SLUICE_CONSOLE_TOKEN=", "SLUICE_LOG_LEVEL="}, "serve", "--data", data, "--config", cfg, "--addr", "127.0.0.1:0", "--poll", "100ms")
	p.waitOut(t, regexp.MustCompile(`metrics\s+(http://\S+)/metrics`))
	for _, f := range twoFeeds {
		// serve made the feed folders.
		if err := os.WriteFile(filepath.Join(data, "input", f.name, f.name+f.ext), feedInput(t, orders, n, f.delim, f.ext), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for strings.Count(p.stderr.String(), `msg="batch ended"`) < len(twoFeeds) {
		if time.Now().After(deadline) {
			t.Fatalf("not every feed's batch ended:\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop(t)
	_, out, _ := cli(t, nil, "status", "--data", data, "--json")
	var bs []sluice.Batch
	if err := json.Unmarshal([]byte(out), &bs); err != nil || len(bs) != len(twoFeeds) {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	paths := map[string]string{}
	for _, b := range bs {
		i := slices.IndexFunc(twoFeeds, func(f struct{ name, delim, to, ext, extra string }) bool { return f.name == b.Feed })
		if i < 0 || b.State != sluice.StateCompleted || b.RowsOut != n || b.Key != "input/"+b.Feed+"/"+b.Feed+twoFeeds[i].ext {
			t.Fatalf("batch %+v", b)
		}
		paths[b.Feed] = filepath.Join(data, "bucket", filepath.FromSlash(b.OutputKey))
		f, err := os.Open(filepath.Join(data, "outbox", "sluice-batch-"+b.ID+".eml"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(f)
		f.Close()
		if err != nil || m.Header.Get("To") != twoFeeds[i].to {
			t.Fatalf("%s email to %q (%v); want %s", b.Feed, m.Header.Get("To"), err, twoFeeds[i].to)
		}
	}
	want := readOutput(t, paths["plain"], nil)
	if len(want) != n+1 {
		t.Fatalf("plain feed: %d records; want %d", len(want), n+1)
	}
	for feed, path := range paths {
		got := readOutput(t, path, want[0])
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("%s output differs from the plain CSV feed's:\n%q\nwant\n%q", feed, got[:min(3, len(got))], want[:3])
		}
	}
}
