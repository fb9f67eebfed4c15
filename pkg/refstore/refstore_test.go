package refstore_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/pkg/refstore"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sluice/sluicetest"
)

func TestConformance(t *testing.T) {
	sluicetest.TestCatalog(t, func(t *testing.T) (sluice.Catalog, sluice.CatalogLoader) {
		s, err := refstore.Open(filepath.Join(t.TempDir(), "reference.idx"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, err := s.Columns(t.Context()); err == nil {
			t.Fatal("an empty store has columns")
		}
		return s, s
	})
}

func TestReopenAfterLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reference.idx")
	s, _ := refstore.Open(path)
	i := 0
	n, err := s.Load(t.Context(), []string{"k", "v"}, func() ([]string, error) {
		if i == 100000 {
			return nil, io.EOF
		}
		i++
		return []string{fmt.Sprint(i), fmt.Sprint(i * 2)}, nil
	})
	if err != nil || n != 100000 {
		t.Fatal(n, err)
	}
	s.Close()
	s2, err := refstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	vals, err := s2.Lookup(context.Background(), []string{"1", "99999", "100001"})
	if err != nil || fmt.Sprint(vals) != "[[2] [199998] []]" {
		t.Fatalf("%v %v", vals, err)
	}
}

func BenchmarkLookup(b *testing.B) {
	s, _ := refstore.Open(filepath.Join(b.TempDir(), "reference.idx"))
	defer s.Close()
	const n = 1000000
	i := 0
	s.Load(context.Background(), []string{"uuid", "a", "b", "c", "d", "e", "f"}, func() ([]string, error) {
		if i == n {
			return nil, io.EOF
		}
		i++
		return []string{fmt.Sprintf("%09d", i*7919%1000000007), "934", "152.58", "97.44", "142509.72", "91008.96", "51500.76"}, nil
	})
	keys := make([]string, 10000)
	for j := range keys {
		keys[j] = fmt.Sprintf("%09d", (j*37%n+1)*7919%1000000007)
	}
	b.ResetTimer()
	for b.Loop() {
		s.Lookup(context.Background(), keys)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
}
