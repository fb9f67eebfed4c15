package s3blob_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/s3blob"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// noUploadsLeft fails unless the bucket lists no multipart upload; a
// listing that fails is a failure too, not a pass.
func noUploadsLeft(t *testing.T, st *s3blob.Store) {
	t.Helper()
	ups, err := st.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(st.Bucket())})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	if len(ups.Uploads) > 0 {
		t.Fatalf("uploads left open: %d (first: %s)", len(ups.Uploads), aws.ToString(ups.Uploads[0].Key))
	}
}

// TestUploadsListedAndAborted: the S3Copy endpoint lists an open upload
// and aborts it, so noUploadsLeft can fail.
func TestUploadsListedAndAborted(t *testing.T) {
	st := newStoreOn(t, awstest.S3Copy)
	c := st.Client()
	up, err := c.CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{Bucket: aws.String(st.Bucket()), Key: aws.String("x/y")})
	if err != nil {
		t.Fatal(err)
	}
	ups, err := c.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(st.Bucket())})
	if err != nil || len(ups.Uploads) != 1 || aws.ToString(ups.Uploads[0].Key) != "x/y" || aws.ToString(ups.Uploads[0].UploadId) != aws.ToString(up.UploadId) {
		t.Fatalf("ListMultipartUploads = %+v, %v; want the one upload", ups, err)
	}
	if _, err := c.AbortMultipartUpload(t.Context(), &s3.AbortMultipartUploadInput{Bucket: aws.String(st.Bucket()), Key: aws.String("x/y"), UploadId: up.UploadId}); err != nil {
		t.Fatal(err)
	}
	noUploadsLeft(t, st)
}

// rewriteOnCopy is a transport that, before the first UploadPartCopy it
// carries, runs rewrite: a source changed by another writer mid-compose.
type rewriteOnCopy struct {
	next    http.RoundTripper
	once    atomic.Bool
	rewrite func()
}

func (r *rewriteOnCopy) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("X-Amz-Copy-Source") != "" && req.URL.Query().Has("uploadId") && !r.once.Swap(true) {
		r.rewrite()
	}
	return r.next.RoundTrip(req)
}

// TestComposeAbortsWhenASourceChanges: a source rewritten while the
// compose runs (to another size, or to other bytes of the same size)
// fails the compose: the upload is aborted, no object is written, and no
// upload is left open. The same size case fails only because every copy
// and read is conditional on the ETag the compose planned and hashed.
func TestComposeAbortsWhenASourceChanges(t *testing.T) {
	const mib = 1 << 20
	for name, newSize := range map[string]int{"other size": 7 * mib, "same size": 9 * mib} {
		t.Run(name, func(t *testing.T) {
			env := awstest.Shared(t)
			plain := newStoreOn(t, awstest.S3Copy)
			var keys []string
			for i, n := range []int{11 * mib, 9 * mib} {
				b := make([]byte, n)
				rand.Read(b)
				key := "b/parts/" + string(rune('a'+i)) + ".csv"
				if _, err := plain.Put(t.Context(), key, bytes.NewReader(b)); err != nil {
					t.Fatal(err)
				}
				keys = append(keys, key)
			}
			rw := &rewriteOnCopy{next: http.DefaultTransport, rewrite: func() {
				b := make([]byte, newSize)
				rand.Read(b)
				if _, err := plain.Put(t.Context(), keys[1], bytes.NewReader(b)); err != nil {
					t.Error(err)
				}
			}}
			cfg := env.Config(awstest.S3Copy)
			cfg.HTTPClient = &http.Client{Transport: rw}
			st := s3blob.New(cfg, plain.Bucket(), s3blob.WithPathStyle())
			_, _, err := st.Compose(t.Context(), "b/out.csv", []byte("h\n"), keys)
			if !rw.once.Load() {
				t.Fatal("the compose made no UploadPartCopy; the test rewrote nothing")
			}
			if err == nil {
				t.Fatal("Compose succeeded though a source changed under it")
			}
			if name == "same size" && !strings.Contains(err.Error(), "PreconditionFailed") {
				t.Errorf("want PreconditionFailed from the ETag condition, got %v", err)
			}
			if _, serr := plain.Stat(t.Context(), "b/out.csv"); !errors.Is(serr, sluice.ErrNotFound) {
				t.Fatalf("an object was written by a failed compose (%v); compose error: %v", serr, err)
			}
			noUploadsLeft(t, plain)
		})
	}
}

// TestS3CopyEnforcesIfMatch: the S3Copy endpoint answers 412 to a
// GetObject under If-Match, and to an UploadPartCopy under
// x-amz-copy-source-if-match, of another ETag than the object's, as S3
// does (s3rver alone ignores both), and serves the right ETag.
func TestS3CopyEnforcesIfMatch(t *testing.T) {
	st := newStoreOn(t, awstest.S3Copy)
	c, b := st.Client(), aws.String(st.Bucket())
	info, err := st.Put(t.Context(), "src/a b.csv", bytes.NewReader(bytes.Repeat([]byte("x"), 1000)))
	if err != nil {
		t.Fatal(err)
	}
	wrong, right := aws.String(`"0123456789abcdef0123456789abcdef"`), aws.String(`"`+info.ETag+`"`)
	if _, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: b, Key: aws.String("src/a b.csv"), IfMatch: wrong}); err == nil || !strings.Contains(err.Error(), "PreconditionFailed") {
		t.Fatalf("GetObject under a wrong If-Match: %v", err)
	}
	if r, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: b, Key: aws.String("src/a b.csv"), IfMatch: right}); err != nil {
		t.Fatalf("GetObject under the right If-Match: %v", err)
	} else {
		r.Body.Close()
	}
	up, err := c.CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("dst")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.AbortMultipartUpload(t.Context(), &s3.AbortMultipartUploadInput{Bucket: b, Key: aws.String("dst"), UploadId: up.UploadId})
	src := aws.String(st.Bucket() + "/src/a%20b.csv")
	for _, m := range []struct {
		etag *string
		ok   bool
	}{{wrong, false}, {right, true}} {
		_, err := c.UploadPartCopy(t.Context(), &s3.UploadPartCopyInput{Bucket: b, Key: aws.String("dst"), UploadId: up.UploadId, PartNumber: aws.Int32(1),
			CopySource: src, CopySourceRange: aws.String("bytes=0-99"), CopySourceIfMatch: m.etag})
		if m.ok && err != nil || !m.ok && (err == nil || !strings.Contains(err.Error(), "PreconditionFailed")) {
			t.Fatalf("UploadPartCopy under If-Match %s: %v", aws.ToString(m.etag), err)
		}
	}
}
