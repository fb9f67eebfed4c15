package pipeline

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sluicehq/sluice/pkg/sluice"
)

func TestSafeName(t *testing.T) {
	if got := SafeName("orders.csv"); got != "orders.csv" {
		t.Fatalf("a short name changed: %q", got)
	}
	seen := map[string]string{}
	for _, n := range []int{161, 245, 1018} {
		for _, fill := range []string{"é", "x", "日"} {
			name := strings.Repeat(fill, n/len(fill)) + ".csv"
			got := SafeName(name)
			if len(got) > MaxNameBytes || !utf8.ValidString(got) || !strings.HasSuffix(got, ".csv") {
				t.Errorf("SafeName(%d bytes of %s) = %q (%d bytes)", len(name), fill, got, len(got))
			}
			if other, dup := seen[got]; dup {
				t.Errorf("%q and %q share %q", other, name, got)
			}
			seen[got] = name
		}
	}
	b := sluice.Batch{ID: "0123456789abcdef0123", Name: strings.Repeat("n", 1018)}
	for _, k := range []string{ArchiveKey(b), ChunkKey(b, 99999), OutputPartKey(b, 0), ErrorPartKey(b, 0), OutputKey(b), ErrorsKey(b), ManifestKey(b)} {
		if err := sluice.ValidateKey(k); err != nil || len(k) > 200 {
			t.Errorf("key %q (%d bytes): %v", k, len(k), err)
		}
	}
}

func TestRejectRateReason(t *testing.T) {
	half := 0.5
	b := sluice.Batch{RowsIn: 100, RowsOut: 3, RowsRejected: 97}
	if got := rejectRateExceeded(&half, b); !strings.HasPrefix(got, "97% of rows were rejected (limit 50%") {
		t.Fatalf("reason %q", got)
	}
	if got := rejectRateExceeded(nil, b); got != "" {
		t.Fatalf("no limit, but %q", got)
	}
	b = sluice.Batch{RowsIn: 2000, RowsOut: 999, RowsRejected: 1001}
	if got := rejectRateExceeded(&half, b); !strings.HasPrefix(got, "50.1% of rows") {
		t.Fatalf("reason %q", got)
	}
	if !RejectsDominate(b) || RejectsDominate(sluice.Batch{RowsIn: 2, RowsOut: 1, RowsRejected: 1}) {
		t.Fatal("RejectsDominate is not 'more rejected than passed'")
	}
}
