// Package testenv finds what tests need outside the code under test: the
// repository root, the shared seed sample beside it, and the body behind a
// link as a browser would read it. It is imported only by tests and by the
// conformance suites, never by a production package.
package testenv

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
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

// Fetch reads a link made by BlobStore.Link: file:// URLs from disk,
// http(s) URLs with a plain GET, as a person's browser would.
func Fetch(ctx context.Context, link string) ([]byte, error) {
	u, err := url.Parse(link)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "file" {
		return os.ReadFile(u.Path)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		// Without the query: a presigned link's signature has no place in a test log.
		u.RawQuery = ""
		return nil, errors.New("GET " + u.Redacted() + ": " + resp.Status + ": " + string(b))
	}
	return b, err
}
