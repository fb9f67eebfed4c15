package sluicetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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
	t.Run("GetRange", func(t *testing.T) {
		s := newStore(t)
		body := []byte("header\nrow one\nrow two\n")
		mustPut(t, s, "input_archive/b/f.csv", body)
		for _, c := range []struct {
			off, n int64
			want   string
		}{{7, 8, "row one\n"}, {0, 6, "header"}, {15, 100, "row two\n"}, {3, 0, ""}} {
			r, err := s.GetRange(t.Context(), "input_archive/b/f.csv", c.off, c.n)
			if err != nil {
				t.Fatalf("GetRange(%d, %d): %v", c.off, c.n, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || string(got) != c.want {
				t.Errorf("GetRange(%d, %d) = %q, %v; want %q", c.off, c.n, got, err, c.want)
			}
		}
		// A big object (a multipart upload on S3, with a whole-object
		// checksum a range must not be checked against).
		big := make([]byte, 11<<20+5)
		rand.Read(big)
		if _, err := s.Put(t.Context(), "input_archive/b/big.csv", onlyReader{bytes.NewReader(big)}); err != nil {
			t.Fatal(err)
		}
		r, err := s.GetRange(t.Context(), "input_archive/b/big.csv", 6<<20+3, 1<<20)
		if err != nil {
			t.Fatalf("GetRange of a big object: %v", err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, big[6<<20+3:7<<20+3]) {
			t.Errorf("GetRange of a big object: %d bytes, %v; want the range's bytes", len(got), err)
		}
		if _, err := s.GetRange(t.Context(), "nope/x.csv", 0, 5); !errors.Is(err, sluice.ErrNotFound) {
			t.Errorf("GetRange of a missing object: %v, want ErrNotFound", err)
		}
		if _, err := s.GetRange(t.Context(), "input_archive/b/f.csv", -1, 5); err == nil {
			t.Errorf("GetRange with a negative offset worked")
		}
	})
	t.Run("Conditional", func(t *testing.T) { testConditional(t, newStore(t)) })
	t.Run("ConditionalBig", func(t *testing.T) { testConditionalBig(t, newStore(t)) })
	t.Run("Compose", func(t *testing.T) {
		s := newStore(t)
		c, ok := s.(sluice.Composer)
		if !ok {
			t.Skip("the store cannot compose")
		}
		// Sources over S3's 5 MiB part minimum, after a short one (which
		// the first must top up) and around an empty one.
		big1, big2 := make([]byte, 6<<20+7), make([]byte, 5<<20+1)
		rand.Read(big1)
		rand.Read(big2)
		srcs := map[string][]byte{"b/parts/p0.csv": []byte("a,1\n"), "b/parts/p1.csv": big1, "b/parts/p2.csv": nil, "b/parts/p3.csv": big2, "b/parts/p4.csv": []byte("z,9\n")}
		keys := []string{"b/parts/p0.csv", "b/parts/p1.csv", "b/parts/p2.csv", "b/parts/p3.csv", "b/parts/p4.csv"}
		want := []byte("h,n\n")
		for _, k := range keys {
			mustPut(t, s, k, srcs[k])
			want = append(want, srcs[k]...)
		}
		mustPut(t, s, "b/out.csv", []byte("old content"))
		info, sum, err := c.Compose(t.Context(), "b/out.csv", []byte("h,n\n"), keys)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if got := mustGet(t, s, "b/out.csv"); !bytes.Equal(got, want) {
			t.Fatalf("composed %d bytes, want %d equal to head and sources", len(got), len(want))
		}
		if info.Size != int64(len(want)) {
			t.Errorf("Compose size %d, want %d", info.Size, len(want))
		}
		if h := sha256.Sum256(want); sum != "" && sum != hex.EncodeToString(h[:]) {
			t.Errorf("Compose sha256 %s, want %x", sum, h)
		}
		if _, _, err := c.Compose(t.Context(), "b/out2.csv", nil, []string{"b/parts/p0.csv", "b/parts/missing.csv"}); !errors.Is(err, sluice.ErrNotFound) {
			t.Errorf("Compose from a missing source: %v, want ErrNotFound", err)
		}
		if _, err := s.Stat(t.Context(), "b/out2.csv"); !errors.Is(err, sluice.ErrNotFound) {
			t.Errorf("a failed Compose left an object: %v", err)
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

// readRangeIf reads a conditional range to its end.
func readRangeIf(s sluice.BlobStore, key, etag string, off, n int64) (string, error) {
	r, err := s.GetRangeIf(context.Background(), key, etag, off, n)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return string(b), err
}

// testConditional: the conditional calls act on the object of the ETag
// they name, and on nothing else: an object replaced since (other bytes of
// the same size) is ErrETagMismatch, a missing one ErrNotFound, and in
// both cases nothing is read, copied or deleted.
func testConditional(t *testing.T, s sluice.BlobStore) {
	ctx := t.Context()
	const key, arch = "input/c.csv", "input_archive/b1/c.csv"
	old := mustPut(t, s, key, []byte("header\nrow one\n"))
	if got, err := readRangeIf(s, key, old.ETag, 7, 3); err != nil || got != "row" {
		t.Fatalf("GetRangeIf of the object's ETag = %q, %v", got, err)
	}
	if got, err := readRangeIf(s, key, old.ETag, 3, 0); err != nil || got != "" {
		t.Fatalf("an empty GetRangeIf of the object's ETag = %q, %v", got, err)
	}
	cur := mustPut(t, s, key, []byte("header\nrow two\n"))
	for _, n := range []int64{4, 0} {
		if got, err := readRangeIf(s, key, old.ETag, 11, n); !errors.Is(err, sluice.ErrETagMismatch) {
			t.Errorf("GetRangeIf(%d bytes) of a replaced object = %q, %v; want ErrETagMismatch", n, got, err)
		}
	}
	if got, err := readRangeIf(s, key, cur.ETag, 11, 4); err != nil || got != "two\n" {
		t.Errorf("GetRangeIf of the new ETag = %q, %v", got, err)
	}
	if _, err := s.GetIf(ctx, key, old.ETag); !errors.Is(err, sluice.ErrETagMismatch) {
		t.Errorf("GetIf of a replaced object: %v, want ErrETagMismatch", err)
	}
	if r, err := s.GetIf(ctx, key, cur.ETag); err != nil {
		t.Errorf("GetIf of the object's ETag: %v", err)
	} else {
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || string(got) != "header\nrow two\n" {
			t.Errorf("GetIf of the object's ETag = %q, %v", got, err)
		}
	}
	if _, err := s.GetIf(ctx, "nope/x.csv", cur.ETag); !errors.Is(err, sluice.ErrNotFound) {
		t.Errorf("GetIf of a missing object: %v, want ErrNotFound", err)
	}
	if _, err := readRangeIf(s, "nope/x.csv", cur.ETag, 0, 1); !errors.Is(err, sluice.ErrNotFound) {
		t.Errorf("GetRangeIf of a missing object: %v, want ErrNotFound", err)
	}

	if err := s.CopyIf(ctx, key, arch, old.ETag); !errors.Is(err, sluice.ErrETagMismatch) {
		t.Errorf("CopyIf of a replaced object: %v, want ErrETagMismatch", err)
	}
	if _, err := s.Stat(ctx, arch); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("a refused CopyIf left a copy: %v", err)
	}
	if err := s.CopyIf(ctx, "nope/x.csv", arch, old.ETag); !errors.Is(err, sluice.ErrNotFound) {
		t.Errorf("CopyIf of a missing object: %v, want ErrNotFound", err)
	}
	if err := s.CopyIf(ctx, key, arch, cur.ETag); err != nil {
		t.Fatalf("CopyIf of the object's ETag: %v", err)
	}
	if got := mustGet(t, s, arch); string(got) != "header\nrow two\n" {
		t.Errorf("the copy holds %q", got)
	}
	if st, err := s.Stat(ctx, arch); err != nil || !st.IsCopyOf(cur.ETag) || st.IsCopyOf(old.ETag) {
		t.Errorf("Stat of the copy = %+v, %v; want it a copy of %s only", st, err, cur.ETag)
	}

	if err := s.DeleteIf(ctx, key, old.ETag); !errors.Is(err, sluice.ErrETagMismatch) {
		t.Errorf("DeleteIf of a replaced object: %v, want ErrETagMismatch", err)
	}
	if got := mustGet(t, s, key); string(got) != "header\nrow two\n" {
		t.Fatalf("a refused DeleteIf changed the object: %q", got)
	}
	if err := s.DeleteIf(ctx, key, cur.ETag); err != nil {
		t.Fatalf("DeleteIf of the object's ETag: %v", err)
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, sluice.ErrNotFound) {
		t.Errorf("DeleteIf left the object: %v", err)
	}
	if err := s.DeleteIf(ctx, key, cur.ETag); !errors.Is(err, sluice.ErrNotFound) {
		t.Errorf("DeleteIf of a missing object: %v, want ErrNotFound", err)
	}
}

// testConditionalBig: a copy of a big object (a multipart upload on S3,
// whose copy S3 gives an ETag of its own) is still known as its copy, and
// ranges of it read under its own ETag.
func testConditionalBig(t *testing.T, s sluice.BlobStore) {
	ctx := t.Context()
	big := make([]byte, 11<<20+5)
	rand.Read(big)
	if _, err := s.Put(ctx, "input/big.csv", onlyReader{bytes.NewReader(big)}); err != nil {
		t.Fatal(err)
	}
	src, err := s.Stat(ctx, "input/big.csv")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CopyIf(ctx, "input/big.csv", "input_archive/b2/big.csv", src.ETag); err != nil {
		t.Fatalf("CopyIf of a big object: %v", err)
	}
	cp, err := s.Stat(ctx, "input_archive/b2/big.csv")
	if err != nil || !cp.IsCopyOf(src.ETag) || cp.Size != src.Size {
		t.Fatalf("Stat of the copy = %+v, %v; want a copy of %+v", cp, err, src)
	}
	got, err := readRangeIf(s, "input_archive/b2/big.csv", cp.ETag, 6<<20+3, 1<<20)
	if err != nil || got != string(big[6<<20+3:7<<20+3]) {
		t.Errorf("GetRangeIf of the copy: %d bytes, %v; want the range's bytes", len(got), err)
	}
}
