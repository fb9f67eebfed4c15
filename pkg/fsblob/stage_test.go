package fsblob_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/fsblob"
)

// TestStageFile: the staged copy is invisible until published, its ETag is
// the one Put and ETagOfFile give the same bytes, and a discarded copy
// leaves nothing behind.
func TestStageFile(t *testing.T) {
	dir := t.TempDir()
	s, err := fsblob.New(filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "orders.csv")
	body := bytes.Repeat([]byte("a,b,c\n1,2,3\n"), 100000)
	if err := os.WriteFile(src, body, 0o644); err != nil {
		t.Fatal(err)
	}
	want, size, err := fsblob.ETagOfFile(src)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.StageFile(t.Context(), "input/orders.csv", src)
	if err != nil {
		t.Fatal(err)
	}
	if st.ETag != want || st.Size != size {
		t.Fatalf("staged ETag %q size %d, want %q %d", st.ETag, st.Size, want, size)
	}
	if l, _ := s.List(t.Context(), "input/"); len(l) != 0 {
		t.Fatalf("a staged copy is listed: %v", l)
	}
	info, err := st.Publish(t.Context())
	if err != nil || info.ETag != want || info.Size != size {
		t.Fatalf("Publish = %+v, %v", info, err)
	}
	put, err := s.Put(t.Context(), "input/again.csv", bytes.NewReader(body))
	if err != nil || put.ETag != want {
		t.Fatalf("Put gave ETag %q (%v), StageFile %q", put.ETag, err, want)
	}
	r, err := s.Get(t.Context(), "input/orders.csv")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, body) {
		t.Fatal("the published copy differs from the file")
	}

	st, err = s.StageFile(t.Context(), "input/dropped.csv", src)
	if err != nil {
		t.Fatal(err)
	}
	st.Discard()
	st.Discard()
	ents, _ := os.ReadDir(filepath.Join(dir, "bucket", "input"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), fsblob.TempPrefix) || e.Name() == "dropped.csv" {
			t.Fatalf("a discarded copy stayed: %s", e.Name())
		}
	}
}

// TestPutScratch: a part stored without its hash reads back whole, and
// Stat still describes it (with the weak ETag of size and time).
func TestPutScratch(t *testing.T) {
	s, err := fsblob.New(filepath.Join(t.TempDir(), "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("x,y\n", 5000)
	if err := s.PutScratch(t.Context(), "b/parts/00001.csv", strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(t.Context(), "b/parts/00001.csv")
	if err != nil || info.Size != int64(len(body)) || !strings.HasPrefix(info.ETag, "w-") {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
	r, err := s.Get(t.Context(), "b/parts/00001.csv")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if string(got) != body {
		t.Fatal("the part reads back different")
	}
}

// BenchmarkCompose merges 100 parts of 1 MiB, the local merge of a
// 1M-row batch's output (about 110 MB): the copy and the hash.
func BenchmarkCompose(b *testing.B) {
	s, err := fsblob.New(filepath.Join(b.TempDir(), "bucket"))
	if err != nil {
		b.Fatal(err)
	}
	part := bytes.Repeat([]byte("123456789,Country,Item,Online,H,1/1/2020,Region,2/1/2020,934,1.5\n"), 1<<20/66)
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("b/parts/%05d.csv", i)
		if err := s.PutScratch(b.Context(), keys[i], bytes.NewReader(part)); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(part) * len(keys)))
	for b.Loop() {
		if _, _, err := s.Compose(b.Context(), "b/output.csv", []byte("h\n"), keys); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStageFile stages a 100 MiB file: the kernel's copy and the
// hash of the copy.
func BenchmarkStageFile(b *testing.B) {
	dir := b.TempDir()
	s, err := fsblob.New(filepath.Join(dir, "bucket"))
	if err != nil {
		b.Fatal(err)
	}
	src := filepath.Join(dir, "orders.csv")
	body := bytes.Repeat([]byte("123456789,Country,Item,Online,H,1/1/2020,Region,2/1/2020\n"), 100<<20/57)
	if err := os.WriteFile(src, body, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		st, err := s.StageFile(b.Context(), "input/orders.csv", src)
		if err != nil {
			b.Fatal(err)
		}
		st.Discard()
	}
}
