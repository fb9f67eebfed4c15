package embedded_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// feedRows are the records every feed test sends: valid rows (one value
// holds a comma, one a semicolon), a bad key and an unknown key.
var feedRows = [][]string{
	{"uuid", "Country", "Item Type", "Sales Channel", "Order Priority", "Order Date", "Region", "Ship Date"},
	{"535113847", "Azerbaijan", "Snacks", "Online", "C", "10/8/14", "Middle East and North Africa", "10/23/14"},
	{"874708545", "Panama, Republic of", "Cosmetics", "Offline", "L", "2/22/15", "Central America; the Caribbean", "2/27/15"},
	{"12345", "Chad", "Fruits", "Offline", "M", "12/9/15", "Sub-Saharan Africa", "1/18/16"},
	{"999999999", "Italy", "Fruits", "Offline", "H", "4/30/11", "Europe", "6/9/11"},
	{"100672805", "Italy", "Fruits", "Offline", "H", "4/30/11", "Europe", "6/9/11"},
}

func csvOf(t *testing.T, rows [][]string, delim rune) []byte {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Comma = delim
	if err := w.WriteAll(rows); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func parseCSV(t *testing.T, b []byte, delim rune) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(b))
	r.Comma = delim
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("reading output back: %v\n%s", err, b)
	}
	return recs
}

// feedCase is one feed of a multi-feed configuration. A feed with another
// input or output format is one more row: its YAML in extra, its input in
// input, and how to read its output back in read.
type feedCase struct {
	name, prefix, to string
	delim            rune
	extra            string                                    // more YAML keys of the feed
	input            func(t *testing.T) []byte                 // nil: feedRows as CSV with delim
	read             func(t *testing.T, out []byte) [][]string // nil: CSV with delim
}

func feedsYAML(cases []feedCase, dataset string) string {
	var b strings.Builder
	b.WriteString("mail: {to: [ops@example.com]}\nfeeds:\n")
	for _, c := range cases {
		fmt.Fprintf(&b, "  - name: %s\n    prefix: %s\n    delimiter: %q\n    reference: {dataset: %s}\n    mail: {to: [%s]}\n%s",
			c.name, c.prefix, string(c.delim), dataset, c.to, c.extra)
	}
	return b.String()
}

// TestFeedsAtOnce: one engine takes several feeds at once. Each file goes
// under input/<prefix>, runs with its feed's delimiter, is enriched from
// the shared dataset, and its output equals, value for value, the default
// pipeline's output of the same rows; each feed's email goes to its own
// recipients and names the feed.
func TestFeedsAtOnce(t *testing.T) {
	cases := []feedCase{
		{name: "orders", prefix: "orders/", to: "orders@example.com", delim: ','},
		{name: "returns", prefix: "returns/", to: "returns@example.com", delim: ';', extra: "    chunkRows: 2\n"},
	}
	ref := writeFile(t, "financials.csv", faultyRef)
	want := runFile(t, config.Default(), writeFile(t, "plain.csv", string(csvOf(t, feedRows, ','))), ref)
	wantRows := parseCSV(t, want.output, ',')
	if len(wantRows) != 4 || want.batch.RowsRejected != 2 {
		t.Fatalf("the default pipeline gave %d output records, %d rejected", len(wantRows), want.batch.RowsRejected)
	}

	cfg, err := config.Parse([]byte(feedsYAML(cases, "financials")))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := embedded.Open(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, _, err := eng.LoadDataset(ctx, "financials", ref, nil); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, c := range cases {
		in := csvOf(t, feedRows, c.delim)
		if c.input != nil {
			in = c.input(t)
		}
		eng.Feed = c.name
		sub, err := eng.Submit(ctx, writeFile(t, c.name+"-2026.csv", string(in)))
		if err != nil {
			t.Fatal(err)
		}
		if want := "input/" + c.prefix + c.name + "-2026.csv"; sub.Key != want {
			t.Fatalf("%s went to %s; want %s", c.name, sub.Key, want)
		}
		ids[c.name] = sub.BatchID
	}
	done := runUntil(t, eng, ids)
	for _, c := range cases {
		b := done[c.name]
		if b.State != sluice.StateCompleted || b.Feed != c.name {
			t.Fatalf("%s: batch %s in feed %q, reason %q", c.name, b.State, b.Feed, b.Reason)
		}
		out, err := os.ReadFile(eng.Path(b.OutputKey))
		if err != nil {
			t.Fatal(err)
		}
		read := func(t *testing.T, o []byte) [][]string { return parseCSV(t, o, c.delim) }
		if c.read != nil {
			read = c.read
		}
		if got := read(t, out); !slices.EqualFunc(got, wantRows, slices.Equal) {
			t.Errorf("%s output:\n%q\nwant the default pipeline's values:\n%q", c.name, got, wantRows)
		}
		if b.RowsRejected != want.batch.RowsRejected {
			t.Errorf("%s rejected %d rows; want %d", c.name, b.RowsRejected, want.batch.RowsRejected)
		}
		checkFeedEmail(t, eng, b, c.to)
	}
}

// runUntil runs the engine until every batch in ids has ended.
func runUntil(t *testing.T, eng *embedded.Engine, ids map[string]string) map[string]sluice.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- eng.Run(runCtx) }()
	out := map[string]sluice.Batch{}
	for name, id := range ids {
		b, err := eng.Wait(ctx, id, nil)
		if err != nil {
			stop()
			<-errc
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = b
	}
	stop()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return out
}

// checkFeedEmail: the batch's one email goes to the feed's recipients and
// names the feed in its subject and body.
func checkFeedEmail(t *testing.T, eng *embedded.Engine, b sluice.Batch, to string) {
	t.Helper()
	f, err := os.Open(filepath.Join(eng.Dir, "outbox", "sluice-batch-"+b.ID+".eml"))
	if err != nil {
		t.Fatalf("%s: %v", b.Feed, err)
	}
	defer f.Close()
	m, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(m.Body)
	if m.Header.Get("To") != to {
		t.Errorf("%s: email to %q; want %q", b.Feed, m.Header.Get("To"), to)
	}
	if want := "[" + b.Feed + "]"; !strings.Contains(m.Header.Get("Subject"), want) {
		t.Errorf("%s: subject %q lacks %s", b.Feed, m.Header.Get("Subject"), want)
	}
	_ = body
}

// TestUnclaimedObjectFailsItsBatch: an object under input/ that no feed's
// prefix claims fails its batch with a reason that lists the prefixes, is
// archived, and the top-level recipients hear of it.
func TestUnclaimedObjectFailsItsBatch(t *testing.T) {
	cfg, err := config.Parse([]byte("mail: {to: [ops@example.com]}\nfeeds:\n  - {name: orders, prefix: orders/}\n  - {name: returns, prefix: returns/}\n"))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := embedded.Open(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := t.Context()
	if _, err := eng.Submit(ctx, writeFile(t, "stray.csv", faulty)); err == nil || !strings.Contains(err.Error(), "--feed") {
		t.Fatalf("a submit to the default feed, which this configuration lacks: %v", err)
	}
	info, err := eng.Blobs.Put(ctx, "input/prices/stray.csv", strings.NewReader(faulty))
	if err != nil {
		t.Fatal(err)
	}
	ev := sluice.ObjectCreated{Version: sluice.MessageVersion, Bucket: eng.Blobs.Bucket(), Key: "input/prices/stray.csv", Size: info.Size, ETag: info.ETag, Sequence: "1"}
	if err := eng.Queues[pipeline.QueueIngest].Send(ctx, sluice.Encode(ev)); err != nil {
		t.Fatal(err)
	}
	id := sluice.BatchID(eng.Blobs.Bucket(), ev.Key, ev.ETag, ev.Sequence)
	b := runUntil(t, eng, map[string]string{"stray": id})["stray"]
	want := `no feed claims "prices/stray.csv": the configured prefixes under input/ are "orders/" (orders), "returns/" (returns)`
	if b.State != sluice.StateFailed || b.Reason != want || b.Feed != "" {
		t.Fatalf("batch %s, feed %q, reason %q; want failed with %q", b.State, b.Feed, b.Reason, want)
	}
	if a, err := os.ReadFile(eng.Path(pipeline.ArchiveKey(b))); err != nil || string(a) != faulty {
		t.Fatalf("input not archived whole: %v", err)
	}
	f, err := os.Open(filepath.Join(eng.Dir, "outbox", "sluice-batch-"+b.ID+".eml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := mail.ReadMessage(f)
	if err != nil || m.Header.Get("To") != "ops@example.com" {
		t.Fatalf("failure email to %q (%v); want the top-level ops@example.com", m.Header.Get("To"), err)
	}
}

// TestDatasetLoadLeavesOtherFeeds: a load into one dataset never changes
// the results of a feed that enriches from another, even with the same
// keys; the feed of the loaded dataset sees the new values.
func TestDatasetLoadLeavesOtherFeeds(t *testing.T) {
	cfg, err := config.Parse([]byte("feeds:\n" +
		"  - {name: a, prefix: a/, reference: {dataset: alpha}}\n" +
		"  - {name: b, prefix: b/, reference: {dataset: beta}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := embedded.Open(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := t.Context()
	ref := writeFile(t, "financials.csv", faultyRef)
	for _, ds := range []string{"alpha", "beta"} {
		if _, _, err := eng.LoadDataset(ctx, ds, ref, nil); err != nil {
			t.Fatal(err)
		}
	}
	in := writeFile(t, "orders.csv", string(csvOf(t, feedRows, ',')))
	run := func(feed string) []byte {
		t.Helper()
		eng.Feed = feed
		sub, b, err := eng.Process(ctx, in, nil, nil)
		if err != nil || b.State != sluice.StateCompleted {
			t.Fatalf("feed %s batch %s: %v %s %q", feed, sub.BatchID, err, b.State, b.Reason)
		}
		out, err := os.ReadFile(eng.Path(b.OutputKey))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before, beforeA := run("b"), run("a")
	if !bytes.Equal(before, beforeA) {
		t.Fatal("two datasets loaded from one file enrich differently")
	}
	if _, _, err := eng.LoadDataset(ctx, "alpha", testenv.OtherReference(t, ref), nil); err != nil {
		t.Fatal(err)
	}
	if after := run("b"); !bytes.Equal(after, before) {
		t.Fatalf("loading dataset alpha changed feed b's output:\n%s\nwas\n%s", after, before)
	}
	if afterA := run("a"); bytes.Equal(afterA, beforeA) || !bytes.Contains(afterA, []byte(",2934,")) {
		t.Fatalf("feed a does not see alpha's new version:\n%s", afterA)
	}
	cat, err := eng.Catalogs("beta")
	if err != nil {
		t.Fatal(err)
	}
	if vs, err := cat.Versions(ctx); err != nil || len(vs) != 1 {
		t.Fatalf("beta holds %d versions (%v); want the one loaded", len(vs), err)
	}
}
