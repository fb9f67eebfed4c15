package services_test

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/reference"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// serviceFeed is one feed of TestFeedsOnFourServices; a feed with another
// format is one more row (its YAML in extra, how to write its input and
// read its output back).
type serviceFeed struct {
	name  string
	delim rune
	ext   string // .csv, .csv.gz (gzip-compressed) or .xlsx (a workbook)
	ds    string // reference dataset; empty: financials
	extra string
}

// serviceFeeds: orders (CSV, Parquet out), returns (.csv.gz, ';', JSON
// Lines out), stock (an xlsx workbook, CSV out, its own dataset other,
// loaded from the same file as financials at first).
var serviceFeeds = []serviceFeed{
	{name: "orders", delim: ',', ext: ".csv", extra: "    output: {format: parquet}\n"},
	{name: "returns", delim: ';', ext: ".csv.gz", extra: "    chunkRows: 100\n    output: {format: jsonl}\n"},
	{name: "stock", delim: ',', ext: ".xlsx", ds: "other", extra: "    input: {sheet: Orders}\n"},
}

// feedRows is the records of the seed's first rows the feeds send: a few
// hundred keep the test short while still making several chunks.
const feedRows = 300

// TestFeedsOnFourServices: the four services on the emulators take three
// feeds at once, each in its own input and output format. The shared dataset is loaded by a put under
// reference/financials/; each file is put under input/<prefix>; each
// output equals, value for value, the embedded default pipeline's CSV
// output of the same rows (Parquet read by DuckDB); each feed's email goes
// to its own recipients.
func TestFeedsOnFourServices(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	feeds := serviceFeeds
	orders = firstRecords(t, orders, feedRows)
	s := newStack(t, 120)
	var y strings.Builder
	y.WriteString("chunkRows: 120\nfeeds:\n")
	for _, f := range feeds {
		fmt.Fprintf(&y, "  - name: %s\n    prefix: %s/\n    delimiter: %q\n    reference: {dataset: %s}\n    mail: {to: [%s]}\n%s",
			f.name, f.name, string(f.delim), cmp.Or(f.ds, "financials"), f.name+"+"+s.mailTo, f.extra)
	}
	if err := os.WriteFile(s.cfgFile, []byte(y.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := s.cli("feeds", "--config", s.cfgFile); !strings.Contains(out, "input/returns/") || !strings.Contains(out, "financials") {
		t.Fatalf("sluice feeds:\n%s", out)
	}
	s.startAll()

	cfg, err := awsconfig.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	db := dynamoledger.New(cfg, dynamoledger.DefaultTables(s.prefix))
	for _, ds := range []string{"financials", "other"} {
		loadDataset(t, s, db, ds, fin, 10000)
	}
	if _, err := db.Catalog().Current(t.Context()); err == nil {
		t.Fatal("a load into dataset financials made a version of the default dataset")
	}
	// The same file through the CLI is the dataset's current version already.
	if out := s.cli("reference", "load", "--aws", "--config", s.cfgFile, "--dataset", "financials", fin); !strings.Contains(out, "reference unchanged") {
		t.Fatalf("reference load --aws --dataset financials:\n%s", out)
	}
	if out := s.cli("reference", "list", "--aws", "--dataset", "financials", "--json"); strings.Count(out, `"current": true`) != 1 {
		t.Fatalf("reference list --aws --dataset financials:\n%s", out)
	}

	want, _, _ := embeddedOutput(t, 120, orders, fin)
	wantRows := readCSV(t, want, ',')
	inputs := map[string]string{}
	for _, f := range feeds {
		in := filepath.Join(t.TempDir(), f.name+f.ext)
		inputs[f.name] = in
		raw, _ := os.ReadFile(orders)
		if err := os.WriteFile(in, feedInput(t, raw, f), 0o644); err != nil {
			t.Fatal(err)
		}
		s.send("ingest", s.put(in, "input/"+f.name+"/"+f.name+f.ext))
	}
	for _, f := range feeds {
		b := s.waitBatch("input/"+f.name+"/"+f.name+f.ext, 3*time.Minute)
		if b.Feed != f.name || b.RowsOut != feedRows {
			t.Fatalf("%s: batch %s in feed %q, %d rows out (%s)", f.name, b.State, b.Feed, b.RowsOut, b.Reason)
		}
		if got := feedOutput(t, s, b.OutputKey, f.delim, wantRows[0]); !slices.EqualFunc(got, wantRows, slices.Equal) {
			t.Fatalf("%s output differs from the embedded default run's values (%d vs %d records)", f.name, len(got), len(wantRows))
		}
		var mine int
		for _, m := range allMails(t, s, feeds) {
			if slices.Contains(m.Destination.To, f.name+"+"+s.mailTo) {
				mine++
				if !strings.Contains(m.Subject, "["+f.name+"]") {
					t.Errorf("%s: subject %q does not name the feed", f.name, m.Subject)
				}
			}
		}
		if mine != 1 {
			t.Errorf("%s: %d emails to its recipients; want 1", f.name, mine)
		}
	}
	otherDatasetLeavesFeed(t, s, db, fin, inputs[feeds[0].name], feeds[0], inputs[feeds[2].name], feeds[2], wantRows)
}

// loadDataset puts file under reference/<ds>/ and waits until it is the
// dataset's current version (rows records).
func loadDataset(t *testing.T, s *stack, db *dynamoledger.DB, ds, file string, rows int) {
	t.Helper()
	s.send("ingest", s.put(file, reference.Prefix+ds+"/prices.csv"))
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		v, err := db.Dataset(ds).Current(t.Context())
		if err == nil && v.Rows == rows {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reference/%s/ never became the dataset's current version: %v", ds, err)
		}
	}
}

// otherDatasetLeavesFeed loads the reference's first 10 rows as dataset other,
// then runs feed f's rows again: dataset financials keeps its current
// version and f's output keeps its values (were other's version used,
// the rows whose keys it lacks would be rejected), while feed o, on
// dataset other, does lose rows.
func otherDatasetLeavesFeed(t *testing.T, s *stack, db *dynamoledger.DB, fin, in string, f serviceFeed, oin string, o serviceFeed, want [][]string) {
	t.Helper()
	cur, err := db.Dataset("financials").Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	loadDataset(t, s, db, "other", firstRecords(t, fin, 10), 10)
	if now, err := db.Dataset("financials").Current(t.Context()); err != nil || now.ID != cur.ID {
		t.Fatalf("loading dataset other changed financials' current version: %s → %s (%v)", cur.ID, now.ID, err)
	}
	key := "input/" + f.name + "/again" + f.ext
	s.send("ingest", s.put(in, key))
	b := s.waitBatch(key, 3*time.Minute)
	if got := feedOutput(t, s, b.OutputKey, f.delim, want[0]); b.RowsOut != feedRows || !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("%s after loading dataset other: %s, %d rows out, output differs: %v", f.name, b.State, b.RowsOut, !slices.EqualFunc(got, want, slices.Equal))
	}
	// The control: the feed on dataset other does see its new version.
	key = "input/" + o.name + "/again" + o.ext
	s.send("ingest", s.put(oin, key))
	ob := s.waitBatch(key, 3*time.Minute)
	if got := feedOutput(t, s, ob.OutputKey, o.delim, want[0]); ob.RowsOut == feedRows && slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("%s after loading 10 reference rows as other: %s, output unchanged", o.name, ob.State)
	}
}

// allMails is every email the SES emulator holds.
func allMails(t *testing.T, s *stack, feeds []serviceFeed) []storedMail {
	t.Helper()
	saved := s.mailTo
	defer func() { s.mailTo = saved }()
	var out []storedMail
	for _, f := range feeds {
		s.mailTo = f.name + "+" + saved
		out = append(out, s.mails()...)
	}
	return out
}

func readCSV(t *testing.T, b []byte, delim rune) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(b))
	r.Comma = delim
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// recode writes a comma-separated file with another delimiter.
func recode(t *testing.T, b []byte, delim rune) []byte {
	t.Helper()
	var out bytes.Buffer
	w := csv.NewWriter(&out)
	w.Comma = delim
	if err := w.WriteAll(readCSV(t, b, ',')); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
