package sluicetest

import (
	"fmt"
	"io"
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

// TestCatalog runs the Catalog suite. newCatalog returns an empty catalog
// and its loader.
func TestCatalog(t *testing.T, newCatalog func(t *testing.T) (sluice.Catalog, sluice.CatalogLoader)) {
	cols := []string{"uuid", "unitsSold", "unitPrice"}
	t.Run("LoadAndLookup", func(t *testing.T) {
		c, ld := newCatalog(t)
		var rows [][]string
		for i := range 1500 {
			rows = append(rows, []string{fmt.Sprintf("%09d", i), fmt.Sprint(i * 3), fmt.Sprintf("%d.5", i)})
		}
		rows = append(rows, []string{"000000007", "21", "7.5"}) // a duplicate with equal values is fine
		rows = append(rows, []string{"empty", "", ""})
		n, err := ld.Load(t.Context(), cols, rowsOf(rows))
		if err != nil || n != 1501 {
			t.Fatalf("Load = %d, %v; want 1501", n, err)
		}
		got, err := c.Columns(t.Context())
		if err != nil || fmt.Sprint(got) != fmt.Sprint(cols) {
			t.Fatalf("Columns = %v, %v", got, err)
		}
		var keys []string
		for i := 0; i < 1200; i++ {
			keys = append(keys, fmt.Sprintf("%09d", (i*7)%1600)) // some beyond 1499: unknown
		}
		keys = append(keys, "000000007", "empty", "")
		vals, err := c.Lookup(t.Context(), keys)
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
	})
	t.Run("ConflictingDuplicateKey", func(t *testing.T) {
		_, ld := newCatalog(t)
		_, err := ld.Load(t.Context(), cols, rowsOf([][]string{{"1", "a", "b"}, {"1", "a", "c"}}))
		if err == nil {
			t.Fatal("a key with two different rows loaded without error")
		}
	})
	t.Run("ReloadReplaces", func(t *testing.T) {
		c, ld := newCatalog(t)
		if _, err := ld.Load(t.Context(), cols, rowsOf([][]string{{"1", "a", "b"}})); err != nil {
			t.Fatal(err)
		}
		if _, err := ld.Load(t.Context(), cols, rowsOf([][]string{{"2", "c", "d"}})); err != nil {
			t.Fatal(err)
		}
		vals, err := c.Lookup(t.Context(), []string{"1", "2"})
		if err != nil || vals[0] != nil || fmt.Sprint(vals[1]) != "[c d]" {
			t.Fatalf("after reload Lookup = %v, %v; want [nil [c d]]", vals, err)
		}
	})
}
