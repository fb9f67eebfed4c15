package testenv

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// OtherReference writes a second reference with the same keys as fin (a
// comma-separated reference, key first) and different values: every value
// gets a leading "2", so each enriched row tells which version it came from.
func OtherReference(t testing.TB, fin string) string {
	t.Helper()
	b, err := os.ReadFile(fin)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for i := 0; sc.Scan(); i++ {
		f := strings.Split(sc.Text(), ",")
		for j := 1; i > 0 && j < len(f); j++ {
			f[j] = "2" + f[j]
		}
		out.WriteString(strings.Join(f, ",") + "\n")
	}
	p := filepath.Join(t.TempDir(), "financials-r2.csv")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
