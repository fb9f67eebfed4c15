package sluicetest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// onlyReader hides every method but Read, so a store cannot seek or learn
// the length: the body of a streamed output.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func mustPut(t *testing.T, s sluice.BlobStore, key string, body []byte) sluice.BlobInfo {
	t.Helper()
	info, err := s.Put(t.Context(), key, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func mustGet(t *testing.T, s sluice.BlobStore, key string) []byte {
	t.Helper()
	r, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return b
}

// TestBlobStore runs the BlobStore suite. newStore returns an empty bucket.
func TestBlobStore(t *testing.T, newStore func(t *testing.T) sluice.BlobStore) {
	t.Run("PutGetStat", func(t *testing.T) {
		s := newStore(t)
		info := mustPut(t, s, "input/orders one.csv", []byte("a,b\n1,2\n"))
		if info.Size != 8 || info.ETag == "" || info.Key != "input/orders one.csv" {
			t.Fatalf("Put returned %+v", info)
		}
		if got := mustGet(t, s, "input/orders one.csv"); string(got) != "a,b\n1,2\n" {
			t.Fatalf("Get = %q", got)
		}
		st, err := s.Stat(t.Context(), "input/orders one.csv")
		if err != nil || st.Size != 8 || st.ETag != info.ETag {
			t.Fatalf("Stat = %+v, %v; want size 8 etag %q", st, err, info.ETag)
		}
		info2 := mustPut(t, s, "input/orders one.csv", []byte("a,b\n3,4\n"))
		if info2.ETag == info.ETag {
			t.Fatalf("ETag %q did not change with the content", info.ETag)
		}
		if got := mustGet(t, s, "input/orders one.csv"); string(got) != "a,b\n3,4\n" {
			t.Fatalf("after overwrite Get = %q", got)
		}
	})
	t.Run("LargeUnseekableBody", func(t *testing.T) {
		s := newStore(t)
		body := make([]byte, 11<<20+12345) // more than two 5 MiB parts
		rand.Read(body)
		info, err := s.Put(t.Context(), "big/blob.bin", onlyReader{bytes.NewReader(body)})
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		if info.Size != int64(len(body)) {
			t.Fatalf("size %d, want %d", info.Size, len(body))
		}
		if got := mustGet(t, s, "big/blob.bin"); !bytes.Equal(got, body) {
			t.Fatalf("round trip of %d bytes differs (got %d bytes)", len(body), len(got))
		}
	})
	t.Run("EmptyObject", func(t *testing.T) {
		s := newStore(t)
		if info := mustPut(t, s, "input/empty.csv", nil); info.Size != 0 {
			t.Fatalf("size %d", info.Size)
		}
		if got := mustGet(t, s, "input/empty.csv"); len(got) != 0 {
			t.Fatalf("Get = %q", got)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(t.Context(), "nope/x.csv"); !errors.Is(err, sluice.ErrNotFound) {
			t.Fatalf("Get missing: %v, want ErrNotFound", err)
		}
		if _, err := s.Stat(t.Context(), "nope/x.csv"); !errors.Is(err, sluice.ErrNotFound) {
			t.Fatalf("Stat missing: %v, want ErrNotFound", err)
		}
		if err := s.Delete(t.Context(), "nope/x.csv"); err != nil {
			t.Fatalf("Delete missing: %v", err)
		}
		if err := s.Copy(t.Context(), "nope/x.csv", "nope/y.csv"); !errors.Is(err, sluice.ErrNotFound) {
			t.Fatalf("Copy missing: %v, want ErrNotFound", err)
		}
	})
	t.Run("ListByPrefix", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"b1/output/parts/p2.csv", "b1/output/parts/p10.csv", "b1/output/errors/p2.csv", "b1/to_process/x.csv", "b2/output/parts/p1.csv", "b1/outputs.csv"} {
			mustPut(t, s, k, []byte(k))
		}
		keys := func(prefix string) string {
			infos, err := s.List(t.Context(), prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", prefix, err)
			}
			var ks []string
			for _, i := range infos {
				if i.Size != int64(len(i.Key)) {
					t.Errorf("List(%q): %s has size %d", prefix, i.Key, i.Size)
				}
				ks = append(ks, i.Key)
			}
			return strings.Join(ks, " ")
		}
		if got, want := keys("b1/output/parts/"), "b1/output/parts/p10.csv b1/output/parts/p2.csv"; got != want {
			t.Errorf("List parts = %q, want %q", got, want)
		}
		if got, want := keys("b1/output"), "b1/output/errors/p2.csv b1/output/parts/p10.csv b1/output/parts/p2.csv b1/outputs.csv"; got != want {
			t.Errorf("List b1/output = %q, want %q", got, want)
		}
		if got := keys("zzz/"); got != "" {
			t.Errorf("List of an empty prefix = %q", got)
		}
	})
	t.Run("CopyDelete", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "input/f.csv", []byte("hello"))
		if err := s.Copy(t.Context(), "input/f.csv", "input_archive/f.csv"); err != nil {
			t.Fatalf("Copy: %v", err)
		}
		if err := s.Delete(t.Context(), "input/f.csv"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if got := mustGet(t, s, "input_archive/f.csv"); string(got) != "hello" {
			t.Fatalf("copy holds %q", got)
		}
		if _, err := s.Stat(t.Context(), "input/f.csv"); !errors.Is(err, sluice.ErrNotFound) {
			t.Fatalf("deleted object still there: %v", err)
		}
	})
	t.Run("InvalidKeys", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"", "../escape.csv", "/abs.csv", "a/../../b.csv", "a/./b", "ctl\x01.csv", `back\slash.csv`} {
			if _, err := s.Put(t.Context(), k, strings.NewReader("x")); !errors.Is(err, sluice.ErrInvalidKey) {
				t.Errorf("Put(%q): %v, want ErrInvalidKey", k, err)
			}
			if _, err := s.Get(t.Context(), k); !errors.Is(err, sluice.ErrInvalidKey) {
				t.Errorf("Get(%q): %v, want ErrInvalidKey", k, err)
			}
		}
		// Unicode and spaces are fine.
		mustPut(t, s, "input/ördërs 2026 ✓.csv", []byte("ok"))
		if got := mustGet(t, s, "input/ördërs 2026 ✓.csv"); string(got) != "ok" {
			t.Fatalf("unicode key: %q", got)
		}
	})
	t.Run("Link", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "b/output/completed/out put.csv", []byte("linked content"))
		link, exp, err := s.Link(t.Context(), "b/output/completed/out put.csv", 10*time.Minute)
		if err != nil {
			t.Fatalf("Link: %v", err)
		}
		if !exp.IsZero() && (exp.Before(time.Now().Add(9*time.Minute)) || exp.After(time.Now().Add(11*time.Minute))) {
			t.Errorf("link expires at %v, want about 10 minutes from now", exp)
		}
		got, err := testenv.Fetch(t.Context(), link)
		if err != nil {
			t.Fatalf("following the link: %v", err)
		}
		if string(got) != "linked content" {
			t.Fatalf("link gave %q", got)
		}
		if _, _, err := s.Link(t.Context(), "b/missing.csv", time.Minute); err == nil {
			// S3 presigns without looking; that is allowed, but then the
			// link must not work.
			if _, ferr := testenv.Fetch(t.Context(), link[:0]+mustLink(t, s, "b/missing.csv")); ferr == nil {
				t.Errorf("a link to a missing object worked")
			}
		}
	})
}

func mustLink(t *testing.T, s sluice.BlobStore, key string) string {
	l, _, err := s.Link(t.Context(), key, time.Minute)
	if err != nil {
		t.Fatalf("Link: %v", err)
	}
	return l
}
