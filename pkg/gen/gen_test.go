package gen_test

import (
	"bytes"
	"encoding/csv"
	"io"
	"maps"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/oracle"
)

func generate(t testing.TB, o gen.Options) (orders, financials []byte, st gen.Stats) {
	t.Helper()
	var ob, fb bytes.Buffer
	st, err := gen.Write(&ob, &fb, o)
	if err != nil {
		t.Fatal(err)
	}
	return ob.Bytes(), fb.Bytes(), st
}

func TestDeterministic(t *testing.T) {
	o := gen.Options{Rows: 5000, Seed: 42, BadRate: 0.05}
	o1, f1, s1 := generate(t, o)
	o2, f2, s2 := generate(t, o)
	if !bytes.Equal(o1, o2) || !bytes.Equal(f1, f2) {
		t.Error("same options, different bytes")
	}
	if s1.Bad != s2.Bad || !maps.Equal(s1.BadByKind, s2.BadByKind) {
		t.Errorf("same options, different stats: %+v %+v", s1, s2)
	}
	o.Seed = 43
	o3, f3, _ := generate(t, o)
	if bytes.Equal(o1, o3) || bytes.Equal(f1, f3) {
		t.Error("different seeds, same bytes")
	}
}

// TestAgainstOracle checks that every faulty row breaks the rule its kind
// promises and that no valid row is rejected.
func TestAgainstOracle(t *testing.T) {
	for _, o := range []gen.Options{
		{Rows: 12000, Seed: 1, BadRate: 0.05},
		{Rows: 6000, RefRows: 300, Seed: 2, BadRate: 0.1},
		{Rows: 3000, Seed: 3},
		{Rows: 600, Seed: 4, BadRate: 1},
	} {
		orders, financials, st := generate(t, o)
		res, err := oracle.Run(bytes.NewReader(orders), bytes.NewReader(financials))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rejected) != st.Bad || len(res.Rows) != o.Rows-st.Bad {
			t.Errorf("%+v: %d rejected, %d rows out; stats say %d bad of %d", o, len(res.Rejected), len(res.Rows), st.Bad, st.Rows)
		}
		want := map[string]int{}
		sum := 0
		for kind, n := range st.BadByKind {
			want[gen.ExpectedRule(kind)] += n
			sum += n
		}
		if sum != st.Bad {
			t.Errorf("%+v: BadByKind %v sums to %d, Bad is %d", o, st.BadByKind, sum, st.Bad)
		}
		got := map[string]int{}
		for _, r := range res.Rejected {
			got[r.Rule]++
		}
		maps.DeleteFunc(want, func(_ string, n int) bool { return n == 0 })
		if !maps.Equal(got, want) {
			t.Errorf("%+v: rejections by rule %v, want %v", o, got, want)
		}
		if o.BadRate > 0 {
			for _, k := range gen.Kinds {
				if st.BadByKind[k] == 0 {
					t.Errorf("%+v: no %s rows", o, k)
				}
			}
		}
		if len(res.Header) != 14 {
			t.Errorf("header %q", res.Header)
		}
	}
}

func TestFormat(t *testing.T) {
	orders, financials, st := generate(t, gen.Options{Rows: 20000, Seed: 7})
	if st.Rows != 20000 || st.RefRows != 20000 || st.Bad != 0 {
		t.Errorf("stats %+v", st)
	}
	if bytes.Contains(orders, []byte("\r")) || !bytes.HasSuffix(orders, []byte("\n")) {
		t.Error("orders: want LF line endings and a final line break")
	}
	if !bytes.HasPrefix(orders, []byte(gen.OrdersHeader+"\n")) || !bytes.HasPrefix(financials, []byte(gen.FinancialsHeader+"\n")) {
		t.Error("headers")
	}
	// A few rows must need quoting, some with an embedded quote.
	if n := bytes.Count(orders, []byte(`"Korea, South"`)); n == 0 || n > 1000 {
		t.Errorf("%d quoted countries with a comma", n)
	}
	if !bytes.Contains(orders, []byte(`""Ivory Coast""`)) {
		t.Error("no embedded quote")
	}

	recs, err := csv.NewReader(bytes.NewReader(orders)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	uuid := regexp.MustCompile(`^[1-9][0-9]{8}$`)
	date := regexp.MustCompile(`^(1[0-2]|[1-9])/([1-9]|[12][0-9]|3[01])/1[0-7]$`)
	seen := map[string]bool{}
	for _, r := range recs[1:] {
		if !uuid.MatchString(r[0]) || !date.MatchString(r[5]) || !date.MatchString(r[7]) ||
			(r[3] != "Online" && r[3] != "Offline") || !strings.Contains("CHLM", r[4]) || len(r[4]) != 1 {
			t.Fatalf("odd row %q", r)
		}
		if seen[r[0]] {
			t.Fatalf("uuid %s twice with one reference row per order", r[0])
		}
		seen[r[0]] = true
	}

	// Financials: totals are units × price, and match the order's item type.
	fr, err := csv.NewReader(bytes.NewReader(financials)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(fr) != 20001 {
		t.Fatalf("%d financial records", len(fr))
	}
	price := map[string]string{}
	for i, r := range fr[1:] {
		if r[0] != recs[i+1][0] {
			t.Fatalf("reference row %d has key %s, order has %s", i, r[0], recs[i+1][0])
		}
		units, _ := strconv.ParseInt(r[1], 10, 64)
		c := make([]int64, 6)
		for j := range c {
			c[j] = cents(t, r[j+1])
		}
		if units < 1 || units > 9999 || c[3] != units*c[1] || c[4] != units*c[2] || c[5] != c[3]-c[4] {
			t.Fatalf("inconsistent financials %q", r)
		}
		item := recs[i+1][2]
		if p, ok := price[item]; ok && p != r[2] {
			t.Fatalf("%s priced %s and %s", item, p, r[2])
		}
		price[item] = r[2]
	}
	if len(price) != 12 {
		t.Errorf("%d item types", len(price))
	}
}

// cents parses an amount as the seed writes it (1211, 437.2, 91008.96).
func cents(t *testing.T, s string) int64 {
	t.Helper()
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 2 || (len(frac) > 0 && frac[len(frac)-1] == '0') {
		t.Fatalf("amount %q", s)
	}
	w, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt((frac + "00")[:2], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("amount %q", s)
	}
	return w*100 + f
}

func TestRefRowsReuse(t *testing.T) {
	orders, financials, st := generate(t, gen.Options{Rows: 5000, RefRows: 50, Seed: 9, BadRate: 0.02})
	if st.RefRows != 50 {
		t.Errorf("RefRows %d", st.RefRows)
	}
	fr, err := csv.NewReader(bytes.NewReader(financials)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(fr) != 51 {
		t.Fatalf("%d reference records", len(fr))
	}
	keys := map[string]bool{}
	for _, r := range fr[1:] {
		keys[r[0]] = true
	}
	r := csv.NewReader(bytes.NewReader(orders))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]int{}
	unknown := 0
	for _, rec := range recs[1:] {
		if keys[rec[0]] {
			used[rec[0]]++
		} else {
			unknown++
		}
	}
	if len(used) != 50 {
		t.Errorf("orders use %d of 50 keys", len(used))
	}
	// Unknown keys come from unknown_key and uuid_pattern rows, and from
	// empty or short rows that lost their uuid.
	if limit := st.BadByKind[gen.KindUnknownKey] + st.BadByKind[gen.KindUUIDPattern] +
		st.BadByKind[gen.KindEmpty] + st.BadByKind[gen.KindShortRow]; unknown < st.BadByKind[gen.KindUnknownKey] || unknown > limit {
		t.Errorf("%d orders with keys outside the reference; stats %v", unknown, st.BadByKind)
	}
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	op, fp, st, err := gen.WriteFiles(dir+"/sub", gen.Options{Rows: 100, Seed: 5, BadRate: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	ob, fb, want := generate(t, gen.Options{Rows: 100, Seed: 5, BadRate: 0.1})
	o, err1 := os.ReadFile(op)
	f, err2 := os.ReadFile(fp)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if !bytes.Equal(o, ob) || !bytes.Equal(f, fb) || st.Bad != want.Bad {
		t.Error("WriteFiles and Write differ")
	}
	if !strings.HasSuffix(op, "orders.csv") || !strings.HasSuffix(fp, "financials.csv") {
		t.Errorf("paths %s %s", op, fp)
	}
}

func TestOptionsErrors(t *testing.T) {
	for _, o := range []gen.Options{
		{Rows: -1},
		{Rows: 1, RefRows: -1},
		{Rows: 1, BadRate: 1.5},
		{Rows: 1, BadRate: -0.1},
		{Rows: 1, RefRows: gen.MaxRefRows + 1},
	} {
		if _, err := gen.Write(io.Discard, io.Discard, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	orders, financials, st := generate(t, gen.Options{})
	if string(orders) != gen.OrdersHeader+"\n" || string(financials) != gen.FinancialsHeader+"\n" || st.Rows != 0 {
		t.Errorf("empty: %q %q %+v", orders, financials, st)
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, io.ErrShortWrite
	}
	return len(p), nil
}

func TestWriteError(t *testing.T) {
	if _, err := gen.Write(&failWriter{n: 3 << 20}, io.Discard, gen.Options{Rows: 100_000}); err == nil {
		t.Error("orders: no error")
	}
	if _, err := gen.Write(io.Discard, &failWriter{n: 100}, gen.Options{Rows: 100_000}); err == nil {
		t.Error("financials: no error")
	}
}

// BenchmarkGen1M measures generating one million orders and their reference
// rows: go test -run '^$' -bench Gen1M ./pkg/gen
func BenchmarkGen1M(b *testing.B) {
	var n countWriter
	b.ReportAllocs()
	for b.Loop() {
		n = 0
		if _, err := gen.Write(&n, &n, gen.Options{Rows: 1_000_000, Seed: 1, BadRate: 0.03}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(n))
	b.ReportMetric(1e6*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
