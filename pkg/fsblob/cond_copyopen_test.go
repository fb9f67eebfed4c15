package fsblob

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// TestCopyOpenKeepsSourceETag: CopyIf's copy by reading (where hard links
// fail) reports the source's ETag, as a link would: for a file with no
// ETag attribute (weak ETag: mtime and size) and for one Put hashed.
func TestCopyOpenKeepsSourceETag(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bucket")
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	os.MkdirAll(filepath.Join(dir, "input"), 0o755)
	weak := filepath.Join(dir, "input", "weak.csv")
	if err := os.WriteFile(weak, []byte("a,b\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(weak, old, old)
	if _, err := s.Put(ctx, "input/hashed.csv", strings.NewReader("a,b\n3,4\n")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"weak.csv", "hashed.csv"} {
		src, err := s.Stat(ctx, "input/"+name)
		if err != nil {
			t.Fatal(err)
		}
		dst := "input_archive/b/" + name
		if err := s.copyOpen(ctx, "input/"+name, filepath.Join(dir, "input", name), dst, src.ETag); err != nil {
			t.Fatal(err)
		}
		got, err := s.Stat(ctx, dst)
		if err != nil {
			t.Fatal(err)
		}
		if !got.IsCopyOf(src.ETag) {
			t.Errorf("%s: copy has ETag %s CopyOf %q; the source's is %s", name, got.ETag, got.CopyOf, src.ETag)
		}
		a, _ := os.ReadFile(filepath.Join(dir, "input", name))
		b, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(dst)))
		if string(a) != string(b) {
			t.Errorf("%s: copy has %q, source %q", name, b, a)
		}
		if err := s.copyOpen(ctx, "input/"+name, filepath.Join(dir, "input", name), dst+".2", "sha256-other"); !errors.Is(err, sluice.ErrETagMismatch) {
			t.Errorf("%s: copy under another ETag: got %v, want ErrETagMismatch", name, err)
		}
	}
}
