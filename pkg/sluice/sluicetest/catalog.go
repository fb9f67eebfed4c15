package sluicetest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/pkg/sluice"
)

func rowsOf(rows [][]string) func() ([]string, error) {
	i := 0
	return func() ([]string, error) {
		if i == len(rows) {
			return nil, io.EOF
		}
		i++
		return rows[i-1], nil
	}
}

var versionSeq atomic.Int64

// source names a test version the way pkg/reference does: IDs sort by
// load order.
func source(cols []string, rows [][]string) sluice.RefSource {
	n := versionSeq.Add(1)
	return sluice.RefSource{
		ID:   fmt.Sprintf("20260101T000000.%06dZ-suite", n),
		Hash: fmt.Sprintf("%064d", n), Name: "suite.csv", Columns: cols, Next: rowsOf(rows),
	}
}

var suiteCols = []string{"uuid", "unitsSold", "unitPrice"}

func load(t *testing.T, c sluice.Catalog, rows [][]string) sluice.RefVersion {
	t.Helper()
	v, err := c.Load(t.Context(), source(suiteCols, rows))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// lookup looks keys up in version id and prints the values.
func lookup(t *testing.T, c sluice.Catalog, id string, keys ...string) string {
	t.Helper()
	ref, err := c.Version(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := ref.Lookup(t.Context(), keys)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(vals)
}

// TestCatalog runs the Catalog suite. newCatalog returns an empty catalog.
func TestCatalog(t *testing.T, newCatalog func(t *testing.T) sluice.Catalog) {
	cols := suiteCols
	t.Run("EmptyHasNoCurrent", func(t *testing.T) {
		c := newCatalog(t)
		if _, err := c.Current(t.Context()); !errors.Is(err, sluice.ErrNotFound) {
			t.Fatalf("Current on an empty catalog = %v, want ErrNotFound", err)
		}
		if _, err := c.Version(t.Context(), "20260101T000000.000000Z-none"); !errors.Is(err, sluice.ErrNotFound) {
			t.Fatalf("Version of an unknown ID = %v, want ErrNotFound", err)
		}
	})
	t.Run("LoadAndLookup", func(t *testing.T) { testLoadAndLookup(t, newCatalog(t), cols) })
	t.Run("ConflictingDuplicateKey", func(t *testing.T) {
		c := newCatalog(t)
		v1 := load(t, c, [][]string{{"1", "a", "b"}})
		if _, err := c.Load(t.Context(), source(cols, [][]string{{"1", "a", "b"}, {"1", "a", "c"}})); err == nil {
			t.Fatal("a key with two different rows loaded without error")
		}
		if cur, err := c.Current(t.Context()); err != nil || cur.ID != v1.ID {
			t.Fatalf("after a failed load Current = %v, %v; want the previous version %s", cur.ID, err, v1.ID)
		}
		if vs, err := c.Versions(t.Context()); err != nil || len(vs) != 1 {
			t.Fatalf("after a failed load Versions = %v, %v; want only %s", vs, err, v1.ID)
		}
	})
	t.Run("LargeRecordDuplicate", func(t *testing.T) {
		// A key repeated on records over 64 KiB once crashed the local
		// store (it read the first copy back through a 64 KiB window).
		c := newCatalog(t)
		big := strings.Repeat("x", 100<<10)
		v := load(t, c, [][]string{{"1", big, "b"}, {"1", big, "b"}})
		if v.Rows != 1 {
			t.Fatalf("Rows = %d, want 1", v.Rows)
		}
		if got := lookup(t, c, v.ID, "1"); got != fmt.Sprint([][]string{{big, "b"}}) {
			t.Fatalf("the large record came back as %d bytes", len(got))
		}
		if _, err := c.Load(t.Context(), source(cols, [][]string{{"1", big, "b"}, {"1", big + "y", "b"}})); err == nil {
			t.Fatal("a large key with two different rows loaded without error")
		}
	})
	t.Run("VersionsArePinned", func(t *testing.T) { testVersionsArePinned(t, newCatalog(t), cols) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newCatalog(t), cols) })
}

func testLoadAndLookup(t *testing.T, c sluice.Catalog, cols []string) {
	var rows [][]string
	for i := range 1500 {
		rows = append(rows, []string{fmt.Sprintf("%09d", i), fmt.Sprint(i * 3), fmt.Sprintf("%d.5", i)})
	}
	rows = append(rows, []string{"000000007", "21", "7.5"}) // a duplicate with equal values is fine
	rows = append(rows, []string{"empty", "", ""})
	v, err := c.Load(t.Context(), source(cols, rows))
	if err != nil || v.Rows != 1501 {
		t.Fatalf("Load = %d rows, %v; want 1501", v.Rows, err)
	}
	ref, err := c.Version(t.Context(), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ref.Columns(t.Context())
	if err != nil || fmt.Sprint(got) != fmt.Sprint(cols) {
		t.Fatalf("Columns = %v, %v", got, err)
	}
	var keys []string
	for i := 0; i < 1200; i++ {
		keys = append(keys, fmt.Sprintf("%09d", (i*7)%1600)) // some beyond 1499: unknown
	}
	keys = append(keys, "000000007", "empty", "")
	vals, err := ref.Lookup(t.Context(), keys)
	if err != nil || len(vals) != len(keys) {
		t.Fatalf("Lookup: %d values, %v", len(vals), err)
	}
	for i, k := range keys[:1200] {
		n := (i * 7) % 1600
		if n >= 1500 {
			if vals[i] != nil {
				t.Fatalf("unknown key %s gave %v", k, vals[i])
			}
			continue
		}
		if want := fmt.Sprint([]string{fmt.Sprint(n * 3), fmt.Sprintf("%d.5", n)}); fmt.Sprint(vals[i]) != want {
			t.Fatalf("key %s = %v, want %s", k, vals[i], want)
		}
	}
	if vals[1201] == nil || len(vals[1201]) != 2 || vals[1201][0] != "" {
		t.Fatalf("a row of empty values = %#v, want two empty strings", vals[1201])
	}
	if vals[1202] != nil {
		t.Fatalf("empty key = %v", vals[1202])
	}
	if pr, ok := ref.(sluice.PackedReference); ok {
		checkPacked(t, pr, keys, vals)
	}
}

// checkPacked holds a reference's LookupPacked to its Lookup: the same
// keys found, the same values, twice into one reused PackedValues.
func checkPacked(t *testing.T, pr sluice.PackedReference, keys []string, want [][]string) {
	t.Helper()
	var pv sluice.PackedValues
	for range 2 {
		if err := pr.LookupPacked(t.Context(), keys, &pv); err != nil || len(pv.Spans) != len(keys) {
			t.Fatalf("LookupPacked: %d spans, %v", len(pv.Spans), err)
		}
		for i, sp := range pv.Spans {
			if sp.Found != (want[i] != nil) {
				t.Fatalf("LookupPacked(%q) found %v, Lookup %v", keys[i], sp.Found, want[i])
			}
			var got []string
			for rec := pv.Buf[sp.Start:sp.End]; len(rec) > 0; {
				n, k := binary.Uvarint(rec)
				if k <= 0 || uint64(len(rec)-k) < n {
					t.Fatalf("LookupPacked(%q): a truncated value", keys[i])
				}
				got = append(got, string(rec[k:k+int(n)]))
				rec = rec[k+int(n):]
			}
			if fmt.Sprint(got) != fmt.Sprint(want[i]) || len(got) != len(want[i]) {
				t.Fatalf("LookupPacked(%q) = %q, Lookup %q", keys[i], got, want[i])
			}
		}
	}
}

func testVersionsArePinned(t *testing.T, c sluice.Catalog, cols []string) {
	v1 := load(t, c, [][]string{{"1", "a", "b"}, {"3", "e", "f"}})
	v2 := load(t, c, [][]string{{"2", "c", "d"}, {"3", "g", "h"}})
	if cur, err := c.Current(t.Context()); err != nil || cur.ID != v2.ID || cur.Rows != 2 || cur.Hash != v2.Hash {
		t.Fatalf("Current = %+v, %v; want %s", cur, err, v2.ID)
	}
	if got := lookup(t, c, v1.ID, "1", "2", "3"); got != "[[a b] [] [e f]]" {
		t.Fatalf("version 1 after a second load = %s", got)
	}
	if got := lookup(t, c, v2.ID, "1", "2", "3"); got != "[[] [c d] [g h]]" {
		t.Fatalf("version 2 = %s", got)
	}
	vs, err := c.Versions(t.Context())
	if err != nil || len(vs) != 2 || vs[0].ID != v1.ID || vs[1].ID != v2.ID {
		t.Fatalf("Versions = %+v, %v; want %s then %s", vs, err, v1.ID, v2.ID)
	}
	if vs[0].Source != "suite.csv" || fmt.Sprint(vs[0].Columns) != fmt.Sprint(cols) || vs[0].LoadedAt.IsZero() {
		t.Fatalf("version description = %+v", vs[0])
	}
}

func testDelete(t *testing.T, c sluice.Catalog, cols []string) {
	v1 := load(t, c, [][]string{{"1", "a", "b"}})
	v2 := load(t, c, [][]string{{"2", "c", "d"}})
	if err := c.Delete(t.Context(), v2.ID); err == nil {
		t.Fatal("the current version was deleted")
	}
	if err := c.Delete(t.Context(), v1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Version(t.Context(), v1.ID); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("Version of a deleted version = %v, want ErrNotFound", err)
	}
	if vs, err := c.Versions(t.Context()); err != nil || len(vs) != 1 || vs[0].ID != v2.ID {
		t.Fatalf("Versions after Delete = %+v, %v", vs, err)
	}
	if got := lookup(t, c, v2.ID, "2"); got != "[[c d]]" {
		t.Fatalf("the current version after deleting another = %s", got)
	}
}
