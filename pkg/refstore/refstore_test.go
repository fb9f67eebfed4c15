package refstore_test

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/sluicehq/sluice/pkg/refstore"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sluice/sluicetest"
)

func TestConformance(t *testing.T) {
	sluicetest.TestCatalog(t, func(t *testing.T) sluice.Catalog {
		s, err := refstore.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func counting(n int) func() ([]string, error) {
	i := 0
	return func() ([]string, error) {
		if i == n {
			return nil, io.EOF
		}
		i++
		return []string{fmt.Sprint(i), fmt.Sprint(i * 2)}, nil
	}
}

func TestReopenAfterLoad(t *testing.T) {
	dir := t.TempDir()
	s, _ := refstore.Open(dir)
	v, err := s.Load(t.Context(), sluice.RefSource{ID: "20260101T000000.000000Z-a", Hash: "a", Columns: []string{"k", "v"}, Next: counting(100000)})
	if err != nil || v.Rows != 100000 {
		t.Fatal(v, err)
	}
	s.Close()
	s2, err := refstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	cur, err := s2.Current(t.Context())
	if err != nil || cur.ID != v.ID {
		t.Fatalf("Current after reopen = %v, %v", cur, err)
	}
	ref, err := s2.Version(t.Context(), cur.ID)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := ref.Lookup(context.Background(), []string{"1", "99999", "100001"})
	if err != nil || fmt.Sprint(vals) != "[[2] [199998] []]" {
		t.Fatalf("%v %v", vals, err)
	}
}

func BenchmarkLookup(b *testing.B) {
	s, _ := refstore.Open(b.TempDir())
	defer s.Close()
	const n = 1000000
	i := 0
	v, _ := s.Load(context.Background(), sluice.RefSource{ID: "20260101T000000.000000Z-b", Columns: []string{"uuid", "a", "b", "c", "d", "e", "f"}, Next: func() ([]string, error) {
		if i == n {
			return nil, io.EOF
		}
		i++
		return []string{fmt.Sprintf("%09d", i*7919%1000000007), "934", "152.58", "97.44", "142509.72", "91008.96", "51500.76"}, nil
	}})
	ref, _ := s.Version(context.Background(), v.ID)
	keys := make([]string, 10000)
	for j := range keys {
		keys[j] = fmt.Sprintf("%09d", (j*37%n+1)*7919%1000000007)
	}
	b.ResetTimer()
	for b.Loop() {
		ref.Lookup(context.Background(), keys)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
}
