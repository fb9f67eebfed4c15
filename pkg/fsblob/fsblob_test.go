package fsblob_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sluice/sluicetest"
)

func TestConformance(t *testing.T) {
	sluicetest.TestBlobStore(t, func(t *testing.T) sluice.BlobStore {
		s, err := fsblob.New(filepath.Join(t.TempDir(), "bucket"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestKeysStayInsideTheBucket(t *testing.T) {
	dir := t.TempDir()
	s, err := fsblob.New(filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"../outside.csv", "a/../../outside.csv", "/etc/passwd"} {
		if _, err := s.Put(t.Context(), k, strings.NewReader("x")); err == nil {
			t.Errorf("Put(%q) succeeded", k)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "outside.csv")); err == nil {
		t.Fatal("a key escaped the bucket")
	}
}

func TestNoTempFilesLeftOrListed(t *testing.T) {
	s, err := fsblob.New(filepath.Join(t.TempDir(), "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), "a/b.csv", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Root(), "a"))
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only b.csv", len(ents))
	}
	etag, size, err := fsblob.ETagOfFile(filepath.Join(s.Root(), "a", "b.csv"))
	info, _ := s.Stat(t.Context(), "a/b.csv")
	if err != nil || size != 1 || etag != info.ETag {
		t.Fatalf("ETagOfFile = %q %d %v, store says %q", etag, size, err, info.ETag)
	}
}

// TestObjectsAreReadable: objects are 0644 like any file a person copies,
// not the 0600 os.CreateTemp gives the file they are written to.
func TestObjectsAreReadable(t *testing.T) {
	s, err := fsblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), "output/a.csv", strings.NewReader("a\n1\n")); err != nil {
		t.Fatal(err)
	}
	p, _ := s.Path("output/a.csv")
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != fsblob.FileMode {
		t.Fatalf("object mode %v, want %v", st.Mode().Perm(), os.FileMode(fsblob.FileMode))
	}
}
