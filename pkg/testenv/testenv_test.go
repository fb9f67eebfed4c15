package testenv

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRepoRootHoldsThisPackage(t *testing.T) {
	root := RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "pkg", "testenv", "testenv.go")); err != nil {
		t.Fatalf("RepoRoot = %s, which does not hold pkg/testenv: %v", root, err)
	}
}

func TestFetch(t *testing.T) {
	f := filepath.Join(t.TempDir(), "out.csv")
	if err := os.WriteFile(f, []byte("a,b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := Fetch(t.Context(), "file://"+f); err != nil || string(got) != "a,b\n" {
		t.Fatalf("file link: %q, %v", got, err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			http.Error(w, "expired", http.StatusForbidden)
			return
		}
		w.Write([]byte("body"))
	}))
	defer srv.Close()
	if got, err := Fetch(t.Context(), srv.URL+"/ok"); err != nil || string(got) != "body" {
		t.Fatalf("http link: %q, %v", got, err)
	}
	// A refused link is an error carrying the server's answer, never an empty body.
	if _, err := Fetch(t.Context(), srv.URL+"/gone?X-Amz-Signature=secret"); err == nil || !strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("refused link: %v", err)
	}
}
