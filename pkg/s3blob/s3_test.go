package s3blob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/s3blob"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sluice/sluicetest"
)

func TestMain(m *testing.M) { awstest.Main(m, awstest.S3, awstest.S3Copy) }

var buckets atomic.Int64

// newStore returns a store on a new, empty bucket of gofakes3.
func newStore(t *testing.T, opts ...s3blob.Option) *s3blob.Store {
	t.Helper()
	return newStoreOn(t, awstest.S3, opts...)
}

// newStoreOn returns a store on a new, empty bucket of the S3 emulator svc.
func newStoreOn(t *testing.T, svc awstest.Service, opts ...s3blob.Option) *s3blob.Store {
	t.Helper()
	env := awstest.Shared(t)
	name := fmt.Sprintf("sluice-test-%d-%d", time.Now().UnixNano()%1e9, buckets.Add(1))
	st := s3blob.New(env.Config(svc), name, append([]s3blob.Option{s3blob.WithPathStyle()}, opts...)...)
	if _, err := st.Client().CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	return st
}

func TestBlobStoreConformance(t *testing.T) {
	sluicetest.TestBlobStore(t, func(t *testing.T) sluice.BlobStore { return newStore(t) })
}

// The same suite on s3rver, where Compose takes the UploadPartCopy path.
func TestBlobStoreConformanceS3Copy(t *testing.T) {
	sluicetest.TestBlobStore(t, func(t *testing.T) sluice.BlobStore { return newStoreOn(t, awstest.S3Copy) })
}

// readOnly hides everything but Read, as a pipe or a gzip stream would.
type readOnly struct{ r io.Reader }

func (r readOnly) Read(p []byte) (int, error) { return r.r.Read(p) }

func TestMultipartSizes(t *testing.T) {
	const part = 5 << 20
	// Around the part boundary: one byte short of a part goes as one
	// PutObject, an exact part and one byte more as a multipart upload
	// (the latter with a one-byte last part).
	for _, size := range []int{0, 1, part - 1, part, part + 1, 3*part + 17} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			st := newStore(t, s3blob.WithPartSize(part), s3blob.WithConcurrency(2))
			body := make([]byte, size)
			rand.Read(body)
			info, err := st.Put(t.Context(), "in/x.bin", readOnly{bytes.NewReader(body)})
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if info.Size != int64(size) || info.ETag == "" || strings.Contains(info.ETag, `"`) {
				t.Fatalf("Put returned %+v", info)
			}
			if size >= part && !strings.Contains(info.ETag, "-") {
				t.Errorf("ETag %q of a %d-byte body is not a multipart ETag", info.ETag, size)
			}
			st2, err := st.Stat(t.Context(), "in/x.bin")
			// gofakes3 reports a multipart object's plain MD5 on HEAD where
			// S3 reports the md5-of-md5s that the upload returned.
			emulatorETag := size >= part && !awstest.Shared(t).External()
			if err != nil || (st2.ETag != info.ETag && !emulatorETag) || st2.Size != info.Size {
				t.Fatalf("Stat = %+v, %v; Put said %+v", st2, err, info)
			}
			r, err := st.Get(t.Context(), "in/x.bin")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("round trip: %d bytes, %v", len(got), err)
			}
		})
	}
}

// failingReader fails after n bytes, past the first part.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, fmt.Errorf("disk on fire")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

func TestFailedBodyLeavesNoObjectAndNoUpload(t *testing.T) {
	st := newStore(t, s3blob.WithPartSize(5<<20))
	if _, err := st.Put(t.Context(), "in/broken.bin", &failingReader{n: 12 << 20}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Put of a failing body: %v", err)
	}
	if _, err := st.Stat(t.Context(), "in/broken.bin"); err == nil {
		t.Fatal("a failed Put left an object")
	}
	ups, err := st.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(st.Bucket())})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left open", len(ups.Uploads))
	}
}

func TestLinkIsAPlainGET(t *testing.T) {
	st := newStore(t)
	if _, err := st.Put(t.Context(), "out/ré sult.csv", strings.NewReader("a,b\n")); err != nil {
		t.Fatal(err)
	}
	link, exp, err := st.Link(t.Context(), "out/ré sult.csv", 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("default link lives %v, want an hour", d)
	}
	if !strings.Contains(link, "X-Amz-Expires=3600") || !strings.Contains(link, "X-Amz-Signature=") {
		t.Errorf("link %s is not a presigned URL of an hour", link)
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "a,b\n" {
		t.Fatalf("GET %s = %s %q", link, resp.Status, b)
	}
}

func TestCopyKeepsSpecialCharacters(t *testing.T) {
	st := newStore(t)
	src, dst := "input/a+b & c%20d ü.csv", "input_archive/2026/a+b & c%20d ü.csv"
	if _, err := st.Put(t.Context(), src, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := st.Copy(t.Context(), src, dst); err != nil {
		t.Fatal(err)
	}
	infos, err := st.List(t.Context(), "input_archive/")
	if err != nil || len(infos) != 1 || infos[0].Key != dst {
		t.Fatalf("List = %+v, %v", infos, err)
	}
}

func TestListPages(t *testing.T) {
	if testing.Short() {
		t.Skip("puts 1100 objects")
	}
	st := newStore(t)
	const n = 1100 // more than one ListObjectsV2 page of 1000
	for i := range n {
		if _, err := st.Put(t.Context(), fmt.Sprintf("p/%04d", i), strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	infos, err := st.List(t.Context(), "p/")
	if err != nil || len(infos) != n || infos[n-1].Key != fmt.Sprintf("p/%04d", n-1) {
		t.Fatalf("List: %d objects, %v", len(infos), err)
	}
}

// shortCreds are temporary credentials that expire soon, like a task
// role's near the end of their life.
type shortCreds struct{ expires time.Time }

func (c shortCreds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test", SessionToken: "tok", CanExpire: true, Expires: c.expires}, nil
}

func TestLinkLifetimeIsBoundedByCredentials(t *testing.T) {
	env := awstest.Shared(t)
	cfg := env.Config(awstest.S3)
	soon := time.Now().Add(10 * time.Minute)
	cfg.Credentials = shortCreds{expires: soon}
	st := s3blob.New(cfg, "creds-bucket", s3blob.WithPathStyle())
	_, exp, err := st.Link(t.Context(), "x/out.csv", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(soon) {
		t.Fatalf("link expires %v, want the credentials' expiry %v", exp, soon)
	}
	cfg.Credentials = shortCreds{expires: time.Now().Add(5 * time.Hour)}
	_, exp, _ = s3blob.New(cfg, "creds-bucket", s3blob.WithPathStyle()).Link(t.Context(), "x/out.csv", time.Hour)
	if d := time.Until(exp); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("with long-lived credentials the link lives %v, want 1h", d)
	}
}

// TestLinkAsNamesTheDownload: artefact keys are named by batch and chunk;
// the link gives the browser the input's name (issue 10, finding 6).
func TestLinkAsNamesTheDownload(t *testing.T) {
	st := newStore(t)
	const key = "b1/output/completed/output.csv"
	if _, err := st.Put(t.Context(), key, strings.NewReader("a,b\n")); err != nil {
		t.Fatal(err)
	}
	link, _, err := st.LinkAs(t.Context(), key, "orders été.csv", 0)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
	if resp.StatusCode != 200 || string(b) != "a,b\n" || params["filename"] != "orders été.csv" {
		t.Fatalf("GET = %s %q, Content-Disposition %q", resp.Status, b, resp.Header.Get("Content-Disposition"))
	}
}
