package s3blob_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/s3blob"
)

// TestCopyIfKeepsStoredHeaders: what REPLACE would drop, or a copy would
// not take from its source (encryption, storage class, Expires, the
// website redirect, the content headers, the user metadata), is carried
// over, by CopyObject and part by part. Each header is checked where the
// emulator kept it on the source (its HEAD reports it). Part by part runs
// on the emulator that does UploadPartCopy (s3copy) and without the
// website redirect, which that emulator refuses on CreateMultipartUpload
// (S3 takes it).
func TestCopyIfKeepsStoredHeaders(t *testing.T) {
	for _, svc := range []awstest.Service{awstest.S3, awstest.S3Copy} {
		for _, large := range []bool{false, true} {
			name := string(svc)
			var opts []s3blob.Option
			if large && svc != awstest.S3Copy {
				continue
			}
			if large {
				name += "/parts"
				opts = append(opts, s3blob.WithCopyLimit(1))
			}
			t.Run(name, func(t *testing.T) { copyKeepsHeaders(t, newStoreOn(t, svc, opts...), !large) })
		}
	}
}

func copyKeepsHeaders(t *testing.T, st *s3blob.Store, redirect bool) {
	ctx, b := t.Context(), aws.String(st.Bucket())
	exp := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	in := &s3.PutObjectInput{Bucket: b, Key: aws.String("in/x.csv"), Body: strings.NewReader("a\n1\n"),
		ContentType: aws.String("text/csv"), CacheControl: aws.String("no-cache"), ContentLanguage: aws.String("fr"),
		Metadata: map[string]string{"owner": "finance"}, Expires: &exp,
		ServerSideEncryption: types.ServerSideEncryptionAes256, StorageClass: types.StorageClassStandardIa}
	if redirect {
		in.WebsiteRedirectLocation = aws.String("/elsewhere")
	}
	out, err := st.Client().PutObject(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	etag := strings.Trim(aws.ToString(out.ETag), `"`)
	if err := st.CopyIf(ctx, "in/x.csv", "arch/x.csv", etag); err != nil {
		t.Fatal(err)
	}
	src, err := st.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("in/x.csv")})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := st.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("arch/x.csv")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(cp.ContentType) != "text/csv" || cp.Metadata["owner"] != "finance" || cp.Metadata["sluice-copy-of"] != etag {
		t.Errorf("the copy has content type %q and metadata %v; want text/csv, owner and sluice-copy-of %s", aws.ToString(cp.ContentType), cp.Metadata, etag)
	}
	var kept []string
	same := func(what, s, c string) {
		if s == "" {
			t.Logf("no %s on the source: not checked", what)
			return
		}
		kept = append(kept, what)
		if c != s {
			t.Errorf("%s: the copy has %q, the source %q", what, c, s)
		}
	}
	same("Cache-Control", aws.ToString(src.CacheControl), aws.ToString(cp.CacheControl))
	same("Content-Language", aws.ToString(src.ContentLanguage), aws.ToString(cp.ContentLanguage))
	same("Expires", aws.ToString(src.ExpiresString), aws.ToString(cp.ExpiresString))
	same("x-amz-website-redirect-location", aws.ToString(src.WebsiteRedirectLocation), aws.ToString(cp.WebsiteRedirectLocation))
	same("x-amz-server-side-encryption", string(src.ServerSideEncryption), string(cp.ServerSideEncryption))
	same("x-amz-storage-class", string(src.StorageClass), string(cp.StorageClass))
	t.Logf("checked besides the content type and metadata: %v", kept)
	if len(kept) < 2 {
		t.Errorf("the emulator kept only %v of the headers: the test shows little", kept)
	}
}

// TestCopyIfFullMetadata: a source whose user metadata leaves no room for
// the record of its ETag (S3's 2 KB) is still copied, its metadata kept
// as it is, without the record; a plain upload's copy is then known by its
// own ETag, the source's.
func TestCopyIfFullMetadata(t *testing.T) {
	for _, svc := range []awstest.Service{awstest.S3, awstest.S3Copy} {
		t.Run(string(svc), func(t *testing.T) {
			st := newStoreOn(t, svc)
			ctx, b := t.Context(), aws.String(st.Bucket())
			note := strings.Repeat("n", 2000)
			out, err := st.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("in/x.csv"), Body: strings.NewReader("a\n1\n"),
				ContentType: aws.String("text/csv"), Metadata: map[string]string{"note": note}})
			if err != nil {
				t.Skipf("the emulator refuses the source's 2004 bytes of metadata: %v (the size rule: TestHeadOfMetadataLimit)", err)
			}
			etag := strings.Trim(aws.ToString(out.ETag), `"`)
			if err := st.CopyIf(ctx, "in/x.csv", "arch/x.csv", etag); err != nil {
				t.Fatal(err)
			}
			h, err := st.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("arch/x.csv")})
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(h.ContentType) != "text/csv" || h.Metadata["note"] != note || h.Metadata["sluice-copy-of"] != "" {
				t.Errorf("the copy has content type %q and metadata keys %v; want text/csv, note, no sluice-copy-of", aws.ToString(h.ContentType), len(h.Metadata))
			}
			info, err := st.Stat(ctx, "arch/x.csv")
			if err != nil || !info.IsCopyOf(etag) {
				t.Errorf("the copy: %+v %v; want the source's ETag %s", info, err, etag)
			}
		})
	}
}
