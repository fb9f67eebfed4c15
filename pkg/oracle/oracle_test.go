package oracle

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/testenv"
)

const (
	hdr = "uuid,Country,Item Type,Sales Channel,Order Priority,Order Date,Region,Ship Date\n"
	ref = "uuid,unitsSold,unitPrice,unitCost,totalRevenue,totalCost,totalProfit\n" +
		"535113847,934,152.58,97.44,142509.72,91008.96,51500.76\n" +
		"874708545,4551,437.2,263.33,1989697.2,1198414.83,791282.37\n"
	good  = "535113847,Azerbaijan,Snacks,Online,C,10/8/14,Middle East and North Africa,10/23/14"
	good2 = "874708545,Panama,Cosmetics,Offline,L,2/22/15,Central America and the Caribbean,2/27/15"
)

var (
	enriched  = append(strings.Split(good, ","), "934", "152.58", "97.44", "142509.72", "91008.96", "51500.76")
	enriched2 = append(strings.Split(good2, ","), "4551", "437.2", "263.33", "1989697.2", "1198414.83", "791282.37")
)

func TestRun(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name     string
		input    string
		rows     [][]string
		rejected []Rejection
	}{
		{"valid", hdr + good + "\n" + good2, [][]string{enriched, enriched2}, nil},
		{"crlf and bom", "\uFEFF" + strings.ReplaceAll(hdr, "\n", "\r\n") + good + "\r\n" + good2 + "\r\n",
			[][]string{enriched, enriched2}, nil},
		{"blank lines skipped, lines still counted", hdr + "\n" + good + "\n\n\n" + "1,a,b,c,d,e,f,g\n",
			[][]string{enriched}, []Rejection{{Line: 6, Column: "uuid", Rule: RulePattern}}},
		{"short row", hdr + "535113847,Azerbaijan,Snacks,Online,C,10/8/14,Middle East\n" + good,
			[][]string{enriched}, []Rejection{{Line: 2, Rule: RuleFieldCount}}},
		{"long row", hdr + good + ",\n" + good2,
			[][]string{enriched2}, []Rejection{{Line: 2, Rule: RuleFieldCount}}},
		{"empty field is required", hdr + "535113847,Azerbaijan,,Online,C,10/8/14,,10/23/14\n",
			nil, []Rejection{{Line: 2, Column: "Item Type", Rule: RuleRequired}}},
		{"empty uuid is required, not pattern", hdr + ",Azerbaijan,Snacks,Online,C,10/8/14,Europe,10/23/14\n",
			nil, []Rejection{{Line: 2, Column: "uuid", Rule: RuleRequired}}},
		{"maxLength preferred to pattern", hdr + "5351138470,Azerbaijan,Snacks,Online,C,10/8/14,Europe,10/23/14\n",
			nil, []Rejection{{Line: 2, Column: "uuid", Rule: RuleMaxLength}}},
		{"pattern", hdr + "53511384A,Azerbaijan,Snacks,Online,C,10/8/14,Europe,10/23/14\n",
			nil, []Rejection{{Line: 2, Column: "uuid", Rule: RulePattern}}},
		{"first failing column wins", hdr + "535113847," + long(51) + ",Snacks,Online,Urgent,10/8/14,,10/23/14\n",
			nil, []Rejection{{Line: 2, Column: "Country", Rule: RuleMaxLength}}},
		{"length counts characters, not bytes", hdr + "535113847," + strings.Repeat("é", 50) + ",Snacks,Online,C,10/8/14,Europe,10/23/14\n",
			[][]string{append([]string{"535113847", strings.Repeat("é", 50), "Snacks", "Online", "C", "10/8/14", "Europe", "10/23/14"}, enriched[8:]...)}, nil},
		{"region at its limit", hdr + "535113847,Azerbaijan,Snacks,Online,C,10/8/14," + long(100) + ",10/23/14\n" +
			"535113847,Azerbaijan,Snacks,Online,C,10/8/14," + long(101) + ",10/23/14\n",
			[][]string{append([]string{"535113847", "Azerbaijan", "Snacks", "Online", "C", "10/8/14", long(100), "10/23/14"}, enriched[8:]...)},
			[]Rejection{{Line: 3, Column: "Region", Rule: RuleMaxLength}}},
		{"unknown key", hdr + "123456789,Azerbaijan,Snacks,Online,C,10/8/14,Europe,10/23/14\n" + good,
			[][]string{enriched}, []Rejection{{Line: 2, Column: "uuid", Rule: RuleReference}}},
		{"quoted fields, line of a multi-line record", hdr +
			"535113847,\"Korea, South\",Snacks,Online,C,10/8/14,\"Asia\nEast\",10/23/14\n" +
			"nope,Azerbaijan,Snacks,Online,C,10/8/14,Europe,10/23/14\n",
			[][]string{append([]string{"535113847", "Korea, South", "Snacks", "Online", "C", "10/8/14", "Asia\nEast", "10/23/14"}, enriched[8:]...)},
			[]Rejection{{Line: 4, Column: "uuid", Rule: RulePattern}}},
		{"bare quote is a csv error", hdr + "535113847,Az\"erbaijan,Snacks,Online,C,10/8/14,Europe,10/23/14\n" + good,
			[][]string{enriched}, []Rejection{{Line: 2, Rule: RuleCSV}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Run(strings.NewReader(tt.input), strings.NewReader(ref))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Header) != 14 {
				t.Errorf("header has %d columns: %q", len(res.Header), res.Header)
			}
			if !reflect.DeepEqual(res.Rows, tt.rows) {
				t.Errorf("rows:\n got %q\nwant %q", res.Rows, tt.rows)
			}
			if !reflect.DeepEqual(res.Rejected, tt.rejected) {
				t.Errorf("rejected:\n got %+v\nwant %+v", res.Rejected, tt.rejected)
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	for name, in := range map[string][2]string{
		"empty input":       {"", ref},
		"no uuid in input":  {"id,Country\n1,x\n", ref},
		"no uuid in ref":    {hdr, "id,x\n1,2\n"},
		"ragged ref":        {hdr, ref + "1,2\n"},
		"unparsable ref":    {hdr, ref + "1,\"2\n"},
		"empty ref":         {hdr, ""},
		"unparsable header": {"uuid,\"Coun\"try\n", ref},
	} {
		if _, err := Run(strings.NewReader(in[0]), strings.NewReader(in[1])); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestReferenceBOMAndFirstDuplicateWins(t *testing.T) {
	r := "\uFEFF" + ref + "535113847,1,1,1,1,1,1\n"
	res, err := Run(strings.NewReader(hdr+good), strings.NewReader(r))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Rows, [][]string{enriched}) {
		t.Errorf("rows %q", res.Rows)
	}
}

func TestCSV(t *testing.T) {
	res := Result{
		Header: []string{"a", "b"},
		Rows: [][]string{
			{"plain", ""},
			{" leading space", "trailing "},
			{"Korea, South", `say "hi"`},
			{"cr\rlf", "multi\nline"},
			{`\.`, "é"},
		},
	}
	want := "a,b\n" +
		"plain,\n" +
		" leading space,trailing \n" +
		"\"Korea, South\",\"say \"\"hi\"\"\"\n" +
		"\"cr\rlf\",\"multi\nline\"\n" +
		"\\.,é\n"
	if got := string(res.CSV()); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	// What we write, encoding/csv reads back (bar \r, which it turns into \n).
	res.Rows[3][0] = "cr"
	back, err := csv.NewReader(bytes.NewReader(res.CSV())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, append([][]string{res.Header}, res.Rows...)) {
		t.Errorf("round trip: %q", back)
	}
}

// seedDir is shared/seed-sample, beside the repository.
func seedDir(t *testing.T) string {
	orders, _ := testenv.SeedSample(t)
	return filepath.Dir(orders)
}

func TestSeedSample(t *testing.T) {
	dir := seedDir(t)
	in, err := os.Open(filepath.Join(dir, "testfile.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	rf, err := os.Open(filepath.Join(dir, "testfile_financial_data.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	res, err := Run(in, rf)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 10000 || len(res.Rejected) != 0 {
		t.Errorf("%d rows, %d rejected (first: %+v); want 10000, 0", len(res.Rows), len(res.Rejected), res.Rejected[:min(1, len(res.Rejected))])
	}
	wantHeader := strings.Split("uuid,Country,Item Type,Sales Channel,Order Priority,Order Date,Region,Ship Date,"+
		"unitsSold,unitPrice,unitCost,totalRevenue,totalCost,totalProfit", ",")
	if !reflect.DeepEqual(res.Header, wantHeader) {
		t.Errorf("header %q", res.Header)
	}
	if got := strings.Join(res.Rows[0], ","); got != good+",934,152.58,97.44,142509.72,91008.96,51500.76" {
		t.Errorf("first row %s", got)
	}
	out := res.CSV()
	if n := bytes.Count(out, []byte("\n")); n != 10001 {
		t.Errorf("CSV has %d lines", n)
	}
}
