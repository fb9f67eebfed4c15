package fsblob_test

import (
	"errors"
	"fmt"
	"io"
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

// TestDeleteIfNeverRemovesARacingPut: a Put racing a DeleteIf of the
// object it replaces is never lost. Whichever comes first, the new object
// must stay: put first, the delete finds another ETag and refuses; delete
// first, the put lands after it. Without DeleteIf's lock against this
// process's renames, a put landing between the check and the removal was
// removed (the window fsblob's DeleteIf exists to close).
func TestDeleteIfNeverRemovesARacingPut(t *testing.T) {
	s, err := fsblob.New(filepath.Join(t.TempDir(), "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, key := t.Context(), "input/f.csv"
	for i := range 500 {
		old, err := s.Put(ctx, key, strings.NewReader(fmt.Sprintf("old %d\n", i)))
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("new %d\n", i)
		start, done := make(chan struct{}), make(chan error, 2)
		go func() { <-start; _, err := s.Put(ctx, key, strings.NewReader(want)); done <- err }()
		go func() {
			<-start
			err := s.DeleteIf(ctx, key, old.ETag)
			if errors.Is(err, sluice.ErrETagMismatch) {
				err = nil
			}
			done <- err
		}()
		close(start)
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		r, err := s.Get(ctx, key)
		if err != nil {
			t.Fatalf("round %d: the put racing the delete is gone: %v", i, err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if string(got) != want {
			t.Fatalf("round %d: %q, want %q", i, got, want)
		}
	}
}

// TestCopyAgainLeavesNoLink: copying onto an existing copy (a retried
// archive: the same file, hard-linked) leaves no temporary link behind,
// which a rename onto another link of the same file would.
func TestCopyAgainLeavesNoLink(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bucket")
	s, err := fsblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	info, err := s.Put(ctx, "input/f.csv", strings.NewReader("a\n1\n"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Copy(ctx, "input/f.csv", "input_archive/b/f.csv"); err != nil {
			t.Fatal(err)
		}
		if err := s.CopyIf(ctx, "input/f.csv", "input_archive/b/f.csv", info.ETag); err != nil {
			t.Fatal(err)
		}
	}
	left, err := os.ReadDir(filepath.Join(dir, "input_archive", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Fatalf("the archive directory holds %v; want the copy alone", names)
	}
}
