package refstore_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
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

// TestLookupEveryKey loads keys in one order and looks them all up, with
// absent keys mixed in, in another: records are written in slot order and
// probed in slot order, so every value must still come back at its key's
// index.
func TestLookupEveryKey(t *testing.T) {
	s, _ := refstore.Open(t.TempDir())
	defer s.Close()
	const n = 50000
	v, err := s.Load(t.Context(), sluice.RefSource{ID: "20260101T000000.000000Z-e", Columns: []string{"k", "v", "w"}, Next: func() func() ([]string, error) {
		i := 0
		return func() ([]string, error) {
			if i == n {
				return nil, io.EOF
			}
			i++
			return []string{fmt.Sprint("k", i), fmt.Sprint(i * 3), strings.Repeat("x", i%7)}, nil
		}
	}()})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := s.Version(t.Context(), v.ID)
	keys := make([]string, 0, n+n/10)
	for j := n; j >= 1; j-- {
		keys = append(keys, fmt.Sprint("k", j))
		if j%10 == 0 {
			keys = append(keys, fmt.Sprint("absent", j))
		}
	}
	vals, err := ref.Lookup(t.Context(), keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		var want []string
		if j, ok := strings.CutPrefix(k, "k"); ok {
			x, _ := strconv.Atoi(j)
			want = []string{fmt.Sprint(x * 3), strings.Repeat("x", x%7)}
		}
		if !slices.Equal(vals[i], want) || (want == nil) != (vals[i] == nil) {
			t.Fatalf("Lookup(%q) = %q, want %q", k, vals[i], want)
		}
	}
}

// BenchmarkLookupLarge probes a reference of REFSTORE_BENCH_KEYS keys
// (default 1M; BENCHMARKS.md uses 10M) with chunks of REFSTORE_BENCH_CHUNK
// random keys (default 10,000, the default chunkRows), the access pattern
// of a chunk worker against a full-size reference.
func BenchmarkLookupLarge(b *testing.B) {
	n := 1000000
	if e := os.Getenv("REFSTORE_BENCH_KEYS"); e != "" {
		n, _ = strconv.Atoi(e)
	}
	s, _ := refstore.Open(b.TempDir())
	defer s.Close()
	i := 0
	v, err := s.Load(context.Background(), sluice.RefSource{ID: "20260101T000000.000000Z-l", Columns: []string{"uuid", "a", "b", "c", "d", "e", "f"}, Next: func() ([]string, error) {
		if i == n {
			return nil, io.EOF
		}
		i++
		return []string{fmt.Sprintf("%036d", uint64(i)*0x9E3779B97F4A7C15>>20), "934", "152.58", "97.44", "142509.72", "91008.96", "51500.76"}, nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	ref, _ := s.Version(context.Background(), v.ID)
	// strings: Lookup, as every catalog; packed: LookupPacked, the worker's
	// path with the local store (no string per value).
	b.Run("strings", func(b *testing.B) {
		lookupLarge(b, n, func(keys []string) bool {
			vals, _ := ref.Lookup(context.Background(), keys)
			return vals[0] != nil
		})
	})
	var pv sluice.PackedValues
	b.Run("packed", func(b *testing.B) {
		lookupLarge(b, n, func(keys []string) bool {
			ref.(sluice.PackedReference).LookupPacked(context.Background(), keys, &pv)
			return pv.Spans[0].Found
		})
	})
}

// lookupLarge times lookup on chunks of random present keys of a table
// of n keys.
func lookupLarge(b *testing.B, n int, lookup func(keys []string) bool) {
	rng := rand.New(rand.NewPCG(1, 2))
	chunk := 10000
	if e := os.Getenv("REFSTORE_BENCH_CHUNK"); e != "" {
		chunk, _ = strconv.Atoi(e)
	}
	keys := make([]string, chunk)
	var before, after syscall.Rusage
	var cpu int64 // CPU time in the lookups: wall time means little on a loaded machine
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		for j := range keys {
			keys[j] = fmt.Sprintf("%036d", uint64(rng.IntN(n)+1)*0x9E3779B97F4A7C15>>20)
		}
		b.StartTimer()
		var r0, r1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
		found := lookup(keys)
		syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
		cpu += r1.Utime.Nano() - r0.Utime.Nano() + r1.Stime.Nano() - r0.Stime.Nano()
		if !found {
			b.Fatal("a present key was not found")
		}
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
	b.ReportMetric(float64(cpu)/float64(b.N*len(keys)), "cpu-ns/key")
	// Page faults while probing (the key generation between timed parts
	// faults little: it reuses the same few MB).
	b.ReportMetric(float64(after.Minflt-before.Minflt+after.Majflt-before.Majflt)/float64(b.N*len(keys)), "faults/key")
}
