package s3blob_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/s3blob"
)

// TestComposeCopiesOnTheServer runs Compose against s3rver, which does
// UploadPartCopy with ranges and (through awstest) refuses parts S3 would
// refuse, and checks on the wire that the big sources were copied, not
// uploaded: only the head's part and the short sources, topped up to
// 5 MiB from their neighbours, cross the wire, and the result is byte for
// byte head and sources.
func TestComposeCopiesOnTheServer(t *testing.T) {
	env := awstest.Shared(t)
	if env.External() {
		t.Skip("the wire counts need the emulators")
	}
	st := newStoreOn(t, awstest.S3Copy)
	const mib = 1 << 20
	head := []byte("h,n\n")
	sizes := []int{11 * mib, 1000, 0, 2 * mib, 9 * mib, 5*mib + 1, 10}
	want := append([]byte(nil), head...)
	var keys []string
	for i, n := range sizes {
		b := make([]byte, n)
		rand.Read(b)
		key := "b/parts/" + string(rune('a'+i)) + ".csv"
		if _, err := st.Put(t.Context(), key, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		keys, want = append(keys, key), append(want, b...)
	}
	before := env.S3Traffic(st.Bucket())
	info, sum, err := st.Compose(t.Context(), "b/out.csv", head, keys)
	if err != nil {
		t.Fatalf("Compose: %v", err)
	}
	ops := env.S3Traffic(st.Bucket()).Sub(before)
	if h := sha256.Sum256(want); info.Size != int64(len(want)) || sum != hex.EncodeToString(h[:]) {
		t.Errorf("Compose = %+v, %q; want %d bytes, sha256 %x", info, sum, len(want), h)
	}
	// Parts: head + 5 MiB-4 of a; copy the rest of a; b, d and 5 MiB-
	// (1000+2 MiB) of e; copy the rest of e; copy f; g.
	uploaded := int64(5*mib + 5*mib + 10)
	if c := ops["UploadPartCopy"]; c.Calls != 3 {
		t.Errorf("UploadPartCopy calls %d, want 3 (%v)", c.Calls, ops)
	}
	if u := ops["UploadPart"]; u.Calls != 3 || u.In != uploaded {
		t.Errorf("UploadPart %+v, want 3 calls of %d bytes in all", u, uploaded)
	}
	// Read: what was uploaded from sources, and every source once more
	// for the hash.
	if g, n := ops["GetObject"], uploaded-int64(len(head))+int64(len(want)-len(head)); g.Out != n {
		t.Errorf("GetObject read %d bytes, want %d", g.Out, n)
	}
	if p := ops["PutObject"]; p.Calls != 0 {
		t.Errorf("PutObject %+v: the merge streamed", p)
	}
	r, err := st.Get(t.Context(), "b/out.csv")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("composed %d bytes (%v), want %d equal to head and sources", len(got), err, len(want))
	}
	noUploadsLeft(t, st)
}

// TestComposeOfShortPartsStreams: sources all under 5 MiB (chunks too small
// for UploadPartCopy, or shrunk by rejected rows) still make a valid
// object, by one PutObject, hashed on the way.
func TestComposeOfShortPartsStreams(t *testing.T) {
	env := awstest.Shared(t)
	st := newStoreOn(t, awstest.S3Copy, s3blob.WithPartSize(5<<20))
	want := []byte("h\n")
	var keys []string
	for i := range 4 {
		b := bytes.Repeat([]byte{byte('a' + i), '\n'}, 1<<20) // 2 MiB each
		key := "b/parts/" + string(rune('a'+i)) + ".csv"
		if _, err := st.Put(t.Context(), key, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		keys, want = append(keys, key), append(want, b...)
	}
	before := env.S3Traffic(st.Bucket())
	info, sum, err := st.Compose(t.Context(), "b/out.csv", []byte("h\n"), keys)
	if err != nil || info.Size != int64(len(want)) || sum == "" {
		t.Fatalf("Compose = %+v, %q, %v", info, sum, err)
	}
	if c := env.S3Traffic(st.Bucket()).Sub(before)["UploadPartCopy"]; c.Calls != 0 && !env.External() {
		t.Errorf("UploadPartCopy of parts under 5 MiB: %+v", c)
	}
	r, err := st.Get(t.Context(), "b/out.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, _ := io.ReadAll(r); !bytes.Equal(got, want) {
		t.Fatalf("composed %d bytes, want %d", len(got), len(want))
	}
}
