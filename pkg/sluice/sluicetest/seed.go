package sluicetest

import (
	"os"
	"path/filepath"
	"testing"
)

// SeedSample finds the original sample's files in ../shared/seed-sample
// (read in place, never copied into the repo). Without them the test is
// skipped, except under CI=true, where their absence is a failure.
func SeedSample(t testing.TB) (orders, financials string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		cand := filepath.Join(dir, "shared", "seed-sample")
		if _, err := os.Stat(filepath.Join(cand, "testfile.csv")); err == nil {
			return filepath.Join(cand, "testfile.csv"), filepath.Join(cand, "testfile_financial_data.csv")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("shared/seed-sample not found beside the repository")
	}
	t.Skip("shared/seed-sample not found beside the repository")
	return "", ""
}

// RepoRoot is the directory holding go.mod, found by walking up from the
// test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test")
		}
		dir = parent
	}
}
