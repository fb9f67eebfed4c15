package reference_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/reference"
	"github.com/sluicehq/sluice/pkg/refstore"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

const header = "uuid,unitsSold,unitPrice,unitCost,totalRevenue,totalCost,totalProfit\n"

func newStore(t testing.TB) *refstore.Store {
	s, err := refstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func opener(b []byte) reference.Opener {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

func load(t testing.TB, s sluice.Catalog, csv string) (reference.Result, error) {
	return reference.Load(t.Context(), s, "ref.csv", opener([]byte(csv)), config.Default(), nil)
}

// TestValidation: a reference that cannot serve the configuration, or that
// holds odd records, fails the load with a reason that names the fault,
// and the current version stays.
func TestValidation(t *testing.T) {
	row := "1,2,3,4,5,6,7\n"
	cases := []struct{ name, csv, want string }{
		{"empty", "", "the reference file is empty"},
		{"no key column", "id,unitsSold,unitPrice,unitCost,totalRevenue,totalCost,totalProfit\n1,2,3,4,5,6,7\n", `no key column "uuid"`},
		{"missing append column", "uuid,unitsSold,unitPrice,unitCost,totalRevenue,totalCost\n1,2,3,4,5,6\n", `lacks the column(s) "totalProfit" that reference.append names`},
		{"two missing append columns", "uuid,unitsSold,unitPrice,unitCost,totalRevenue\n1,2,3,4,5\n", `"totalCost", "totalProfit"`},
		{"column twice", "uuid,unitsSold,unitsSold,unitPrice,unitCost,totalRevenue,totalCost,totalProfit\n", `names the column "unitsSold" twice`},
		{"short row", header + row + "2,2,3\n", "reference line 3 has 3 fields, its header has 7"},
		{"empty key", header + ",2,3,4,5,6,7\n", "reference line 2 has an empty key"},
		{"long key", header + strings.Repeat("k", reference.MaxKeyBytes+1) + ",2,3,4,5,6,7\n", "over the limit of 1024"},
		{"oversized record", header + "1," + strings.Repeat("x", reference.MaxRecordBytes) + ",3,4,5,6,7\n", "record longer than the limit"},
		{"not UTF-8", header + "1,\xff\xfe,3,4,5,6,7\n", "reference line 2, field 2 is not valid UTF-8"},
		{"NUL byte", header + "1,2\x003,3,4,5,6,7\n", "reference line 2, field 2 holds a NUL byte"},
		{"open quote", header + "1,\"2,3,4,5,6,7\n", "the quote opened on line 2 is never closed"},
		{"conflicting duplicate", header + row + "1,9,3,4,5,6,7\n", `reference key "1" appears twice with different values`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t)
			before, err := load(t, s, header+"100672805,1,2,3,4,5,6\n")
			if err != nil {
				t.Fatal(err)
			}
			_, err = load(t, s, c.csv)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("load error = %v; want one saying %q", err, c.want)
			}
			if !sluice.IsPermanent(err) {
				t.Errorf("%v is not marked permanent: a retry would fail the same way", err)
			}
			if cur, err := s.Current(t.Context()); err != nil || cur.ID != before.Version.ID {
				t.Fatalf("after a refused load Current = %v, %v; want %s", cur.ID, err, before.Version.ID)
			}
		})
	}
}

// TestByteOrderMark: a reference saved with a UTF-8 BOM loads; its key
// column is found.
func TestByteOrderMark(t *testing.T) {
	res, err := load(t, newStore(t), "\ufeff"+header+"1,2,3,4,5,6,7\n")
	if err != nil || res.Version.Columns[0] != "uuid" {
		t.Fatalf("BOM reference: %+v, %v", res.Version, err)
	}
}

// TestLargeDuplicateRecord: a key repeated on records over 64 KiB loads
// (equal values) or is refused (different values). It used to panic with
// "slice bounds out of range" in the local store (issue 10, finding 9).
func TestLargeDuplicateRecord(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	rec := "1," + big + ",3,4,5,6,7\n"
	res, err := load(t, newStore(t), header+rec+rec)
	if err != nil || res.Version.Rows != 1 {
		t.Fatalf("equal large duplicates: %+v, %v", res.Version, err)
	}
	_, err = load(t, newStore(t), header+rec+"1,"+big+"y,3,4,5,6,7\n")
	if err == nil || !strings.Contains(err.Error(), "appears twice with different values") {
		t.Fatalf("different large duplicates: %v", err)
	}
}

// TestUnchangedIsSkipped: the same content is the same version; other
// content is a new version, even when an older version had it.
func TestUnchangedIsSkipped(t *testing.T) {
	s := newStore(t)
	a := header + "1,1,1,1,1,1,1\n"
	b := header + "1,2,2,2,2,2,2\n"
	ra, err := load(t, s, a)
	if err != nil || ra.Skipped {
		t.Fatal(ra, err)
	}
	again, err := load(t, s, a)
	if err != nil || !again.Skipped || again.Version.ID != ra.Version.ID {
		t.Fatalf("second load of the same file = %+v, %v; want skipped as %s", again, err, ra.Version.ID)
	}
	rb, err := load(t, s, b)
	if err != nil || rb.Skipped || rb.Version.ID == ra.Version.ID {
		t.Fatalf("a changed file = %+v, %v", rb, err)
	}
	ra2, err := load(t, s, a)
	if err != nil || ra2.Skipped || ra2.Version.ID == ra.Version.ID || ra2.Version.Hash != ra.Version.Hash {
		t.Fatalf("A again after B = %+v, %v; want a new version with A's hash", ra2, err)
	}
}

// TestCollect: a version an unfinished batch pins is never collected;
// superseded versions nothing uses are, once the grace period passed.
func TestCollect(t *testing.T) {
	s := newStore(t)
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := db.Ledger()
	ids := []string{}
	for i, v := range []string{"1", "2", "3", "4"} {
		r, err := load(t, s, header+"1,"+v+",1,1,1,1,1\n")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.Version.ID)
		if i == 0 {
			if _, _, err := l.CreateBatch(t.Context(), sluice.Batch{ID: "b1", Key: "input/a.csv", RefVersion: r.Version.ID}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if gone, err := reference.Collect(t.Context(), s, l, time.Hour, time.Now()); err != nil || len(gone) != 0 {
		t.Fatalf("within the grace period Collect deleted %v, %v", gone, err)
	}
	gone, err := reference.Collect(t.Context(), s, l, 0, time.Now())
	if err != nil || strings.Join(gone, " ") != ids[1]+" "+ids[2] {
		t.Fatalf("Collect = %v, %v; want %s and %s (not the pinned %s, not the current %s)", gone, err, ids[1], ids[2], ids[0], ids[3])
	}
	us, err := reference.List(t.Context(), s, l)
	if err != nil || len(us) != 2 || us[0].ID != ids[0] || len(us[0].Batches) != 1 || !us[1].Current {
		t.Fatalf("List = %+v, %v", us, err)
	}
	if _, err := l.UpdateBatch(t.Context(), "b1", sluice.BatchUpdate{State: sluice.StateFailed, Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	if gone, err := reference.Collect(t.Context(), s, l, 0, time.Now()); err != nil || len(gone) != 1 || gone[0] != ids[0] {
		t.Fatalf("once its batch ended Collect = %v, %v; want %s", gone, err, ids[0])
	}
	if _, err := s.Version(t.Context(), ids[0]); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("a collected version opens: %v", err)
	}
}

// FuzzLoad: whatever the bytes, a load ends in a version or an error,
// never a panic, and a loaded version answers for the keys it has.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(header + "1,2,3,4,5,6,7\n"))
	f.Add([]byte(header + "1,2,3,4,5,6,7\n1,2,3,4,5,6,7\n"))
	f.Add([]byte(header + "\"1\",\"a\"\"b\",3,4,5,6,7\r\n2,,,,,,\n"))
	f.Add([]byte("uuid\n1\n"))
	if b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "bad", "ref_dup_conflict.csv")); err == nil {
		f.Add(b)
	}
	cfg := config.Default()
	cfg.Limits.MaxLineBytes = 4096
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newStore(t)
		res, err := reference.Load(t.Context(), s, "f.csv", opener(b), cfg, nil)
		if err != nil {
			return
		}
		ref, err := s.Version(t.Context(), res.Version.ID)
		if err != nil {
			t.Fatal(err)
		}
		if res.Version.Rows > bytes.Count(b, []byte("\n"))+1 {
			t.Fatalf("%d rows from %d lines", res.Version.Rows, bytes.Count(b, []byte("\n"))+1)
		}
		cols, _, err := reference.Parse(bytes.NewReader(b), cfg, nil)
		if err != nil || len(cols) != len(res.Version.Columns) {
			t.Fatalf("Parse after a successful load: %v, %v", cols, err)
		}
		if _, err := ref.Lookup(t.Context(), []string{"1", ""}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFileChangedDuringLoad: a file replaced between the hash and the
// load publishes nothing.
func TestFileChangedDuringLoad(t *testing.T) {
	s := newStore(t)
	reads := 0
	open := func() (io.ReadCloser, error) {
		reads++
		v := "1"
		if reads > 1 {
			v = "2"
		}
		return io.NopCloser(strings.NewReader(header + "1," + v + ",1,1,1,1,1\n")), nil
	}
	_, err := reference.Load(t.Context(), s, "ref.csv", open, config.Default(), nil)
	if err == nil || !strings.Contains(err.Error(), "changed while it was being loaded") {
		t.Fatalf("load of a file that changed = %v", err)
	}
	if _, err := s.Current(t.Context()); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("a version was published: %v", err)
	}
}
