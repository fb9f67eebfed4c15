package s3blob_test

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/s3blob"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// TestEmulatorsEnforceIfMatch: both S3 endpoints answer a HEAD, a DELETE
// and a CopyObject conditional on another ETag with 412 and leave the
// object alone, and a conditional DELETE of a missing key with 404, as S3
// does (gofakes3 and s3rver alone ignore all of these: the checks are
// awstest's). The port's conformance cases rely on this.
func TestEmulatorsEnforceIfMatch(t *testing.T) {
	for _, svc := range []awstest.Service{awstest.S3, awstest.S3Copy} {
		t.Run(string(svc), func(t *testing.T) {
			st := newStoreOn(t, svc)
			ctx, c, b := t.Context(), st.Client(), aws.String(st.Bucket())
			info, err := st.Put(ctx, "in/a b.csv", strings.NewReader("a,b\n1,2\n"))
			if err != nil {
				t.Fatal(err)
			}
			key := aws.String("in/a b.csv")
			wrong, right := aws.String(`"0123456789abcdef0123456789abcdef"`), aws.String(`"`+info.ETag+`"`)
			is412 := func(what string, err error) {
				t.Helper()
				if err == nil || !strings.Contains(err.Error(), "412") {
					t.Errorf("%s under a wrong If-Match: %v, want 412", what, err)
				}
			}
			_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: key, IfMatch: wrong})
			is412("HeadObject", err)
			_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("out/c.csv"), CopySource: aws.String(st.Bucket() + "/in/a%20b.csv"), CopySourceIfMatch: wrong})
			is412("CopyObject", err)
			_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: key, IfMatch: wrong})
			is412("DeleteObject", err)
			if _, err := st.Stat(ctx, "in/a b.csv"); err != nil {
				t.Fatalf("a refused conditional delete removed the object: %v", err)
			}
			if _, err := st.Stat(ctx, "out/c.csv"); !errors.Is(err, sluice.ErrNotFound) {
				t.Fatalf("a refused conditional copy wrote: %v", err)
			}
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: key, IfMatch: right}); err != nil {
				t.Fatalf("DeleteObject under the right If-Match: %v", err)
			}
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: key, IfMatch: right}); err == nil || !strings.Contains(err.Error(), "404") {
				t.Errorf("a conditional DeleteObject of a missing key: %v, want 404", err)
			}
		})
	}
}

// TestEmulatorsGiveS3ETags: both S3 endpoints give a multipart upload
// S3's ETag (the MD5 of its parts' MD5s, "-<parts>"), the same on HEAD,
// in a listing and under If-Match as on completion, and a copy of it the
// MD5 of its bytes: another ETag, as on S3 (s3rver gives the MD5 of the
// bytes everywhere and a copy its source's ETag; gofakes3 the multipart
// ETag on completion only). Without this the archive-after-a-crash case
// could not fail on an emulator, and a multipart input looked replaced on
// gofakes3.
func TestEmulatorsGiveS3ETags(t *testing.T) {
	for _, svc := range []awstest.Service{awstest.S3, awstest.S3Copy} {
		t.Run(string(svc), func(t *testing.T) {
			st := newStoreOn(t, svc, s3blob.WithPartSize(5<<20))
			ctx := t.Context()
			body := make([]byte, 11<<20)
			rand.Read(body)
			info, err := st.Put(ctx, "in/big.csv", readOnly{bytes.NewReader(body)})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(info.ETag, "-3") {
				t.Errorf("a 3-part upload's ETag %q is not S3's multipart ETag", info.ETag)
			}
			if got, err := st.Stat(ctx, "in/big.csv"); err != nil || got.ETag != info.ETag {
				t.Errorf("HEAD gives ETag %q (%v), completion %q", got.ETag, err, info.ETag)
			}
			if l, err := st.List(ctx, "in/"); err != nil || len(l) != 1 || l[0].ETag != info.ETag {
				t.Errorf("List gives %+v (%v), completion %q", l, err, info.ETag)
			}
			if r, err := st.GetRangeIf(ctx, "in/big.csv", info.ETag, 0, 10); err != nil {
				t.Errorf("a read under the upload's ETag: %v", err)
			} else {
				r.Close()
			}
			if err := st.Copy(ctx, "in/big.csv", "out/big.csv"); err != nil {
				t.Fatal(err)
			}
			sum := md5.Sum(body)
			if got, err := st.Stat(ctx, "out/big.csv"); err != nil || got.ETag != hex.EncodeToString(sum[:]) {
				t.Errorf("the copy's ETag is %q (%v), want the MD5 of its bytes %x", got.ETag, err, sum)
			}
			// A single PutObject of the same key is a plain object again.
			small, err := st.Put(ctx, "in/big.csv", bytes.NewReader(body[:100]))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := st.Stat(ctx, "in/big.csv"); err != nil || got.ETag != small.ETag || strings.Contains(got.ETag, "-") {
				t.Errorf("after a plain put: ETag %q (%v), want %q", got.ETag, err, small.ETag)
			}
		})
	}
}

// TestCopyIfKeepsHeaders: CopyIf replaces the copy's metadata to record
// its source's ETag; the source's content type and user metadata go with
// it, as a plain copy keeps them.
func TestCopyIfKeepsHeaders(t *testing.T) {
	for _, svc := range []awstest.Service{awstest.S3, awstest.S3Copy} {
		t.Run(string(svc), func(t *testing.T) {
			st := newStoreOn(t, svc)
			ctx, b := t.Context(), aws.String(st.Bucket())
			out, err := st.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("in/x.csv"), Body: strings.NewReader("a\n1\n"),
				ContentType: aws.String("text/csv"), Metadata: map[string]string{"owner": "finance"}})
			if err != nil {
				t.Fatal(err)
			}
			etag := strings.Trim(aws.ToString(out.ETag), `"`)
			if err := st.CopyIf(ctx, "in/x.csv", "arch/x.csv", etag); err != nil {
				t.Fatal(err)
			}
			h, err := st.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("arch/x.csv")})
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(h.ContentType) != "text/csv" || h.Metadata["owner"] != "finance" || h.Metadata["sluice-copy-of"] != etag {
				t.Errorf("the copy has content type %q and metadata %v; want text/csv, owner and sluice-copy-of %s", aws.ToString(h.ContentType), h.Metadata, etag)
			}
		})
	}
}

// TestCopyIfPartByPart: over the copy limit CopyIf copies part by part
// (what S3 needs over 5 GiB): the copy has bytes equal to the source, an
// ETag of its own, and the source's ETag as CopyOf. A source rewritten
// after CopyIf looked (before its first part copy) fails the copy with
// ErrETagMismatch, and no object and no upload are left.
func TestCopyIfPartByPart(t *testing.T) {
	env := awstest.Shared(t)
	plain := newStoreOn(t, awstest.S3Copy)
	ctx := t.Context()
	body := make([]byte, 6<<20+3)
	rand.Read(body)
	info, err := plain.Put(ctx, "in/big.csv", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	small := s3blob.New(env.Config(awstest.S3Copy), plain.Bucket(), s3blob.WithPathStyle(), s3blob.WithCopyLimit(1<<20))
	if err := small.CopyIf(ctx, "in/big.csv", "arch/big.csv", info.ETag); err != nil {
		t.Fatal(err)
	}
	cp, err := plain.Stat(ctx, "arch/big.csv")
	if err != nil || cp.CopyOf != info.ETag || cp.ETag == info.ETag || !strings.Contains(cp.ETag, "-") {
		t.Fatalf("the part-by-part copy: %+v, %v; want a multipart ETag and CopyOf %s", cp, err, info.ETag)
	}
	r, err := plain.Get(ctx, "arch/big.csv")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, body) {
		t.Fatalf("the copy holds %d bytes, not the source's %d", len(got), len(body))
	}

	rw := &rewriteOnCopy{next: http.DefaultTransport, rewrite: func() {
		if _, err := plain.Put(ctx, "in/big.csv", bytes.NewReader(append([]byte("x"), body[1:]...))); err != nil {
			t.Error(err)
		}
	}}
	cfg := env.Config(awstest.S3Copy)
	cfg.HTTPClient = &http.Client{Transport: rw}
	racing := s3blob.New(cfg, plain.Bucket(), s3blob.WithPathStyle(), s3blob.WithCopyLimit(1<<20))
	err = racing.CopyIf(ctx, "in/big.csv", "arch/raced.csv", info.ETag)
	if !rw.once.Load() {
		t.Fatal("no UploadPartCopy was made; the test rewrote nothing")
	}
	if !errors.Is(err, sluice.ErrETagMismatch) {
		t.Fatalf("CopyIf of a source rewritten mid-copy: %v, want ErrETagMismatch", err)
	}
	if _, err := plain.Stat(ctx, "arch/raced.csv"); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("a failed copy left an object: %v", err)
	}
	noUploadsLeft(t, plain)
}
