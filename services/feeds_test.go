package services_test

import (
	"bytes"
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
	extra string
}

// TestFeedsOnFourServices: the four services on the emulators take two
// feeds at once. The shared dataset is loaded by a put under
// reference/financials/; each file is put under input/<prefix>; each
// output equals, value for value, the embedded default pipeline's output
// of the same rows; each feed's email goes to its own recipients.
func TestFeedsOnFourServices(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	feeds := []serviceFeed{{name: "orders", delim: ','}, {name: "returns", delim: ';', extra: "    chunkRows: 3000\n"}}
	s := newStack(t, 2500)
	var y strings.Builder
	y.WriteString("chunkRows: 2500\nfeeds:\n")
	for _, f := range feeds {
		fmt.Fprintf(&y, "  - name: %s\n    prefix: %s/\n    delimiter: %q\n    reference: {dataset: financials}\n    mail: {to: [%s]}\n%s",
			f.name, f.name, string(f.delim), f.name+"+"+s.mailTo, f.extra)
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
	s.send("ingest", s.put(fin, reference.Prefix+"financials/prices.csv"))
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		v, err := db.Dataset("financials").Current(t.Context())
		if err == nil && v.Rows == 10000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reference/financials/ never became the dataset's current version: %v", err)
		}
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

	want, _, _ := embeddedOutput(t, 2500, orders, fin)
	wantRows := readCSV(t, want, ',')
	for _, f := range feeds {
		in := filepath.Join(t.TempDir(), f.name+".csv")
		raw, _ := os.ReadFile(orders)
		if err := os.WriteFile(in, recode(t, raw, f.delim), 0o644); err != nil {
			t.Fatal(err)
		}
		s.send("ingest", s.put(in, "input/"+f.name+"/"+f.name+".csv"))
	}
	for _, f := range feeds {
		b := s.waitBatch("input/"+f.name+"/"+f.name+".csv", 3*time.Minute)
		if b.Feed != f.name || b.RowsOut != 10000 {
			t.Fatalf("%s: batch %s in feed %q, %d rows out (%s)", f.name, b.State, b.Feed, b.RowsOut, b.Reason)
		}
		if got := readCSV(t, s.get(b.OutputKey), f.delim); !slices.EqualFunc(got, wantRows, slices.Equal) {
			t.Fatalf("%s output differs from the embedded default run's values (%d vs %d records)", f.name, len(got), len(wantRows))
		}
		var mine int
		for _, m := range allMails(t, s) {
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
}

// allMails is every email the SES emulator holds.
func allMails(t *testing.T, s *stack) []storedMail {
	t.Helper()
	saved := s.mailTo
	defer func() { s.mailTo = saved }()
	var out []storedMail
	for _, prefix := range []string{"orders+", "returns+"} {
		s.mailTo = prefix + saved
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
