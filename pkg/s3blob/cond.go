package s3blob

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// copyOfMeta is the user metadata (x-amz-meta-sluice-copy-of) in which
// CopyIf records the ETag of the object it copied: S3 gives a copy of a
// multipart upload, and every copy made part by part (copyLarge), an ETag
// of its own, so the copy's ETag cannot say which upload it holds.
const copyOfMeta = "sluice-copy-of"

// GetIf implements sluice.BlobStore: GetObject under If-Match. Unlike a
// range, the whole object is read, so its checksum is validated as Get's.
func (s *Store) GetIf(ctx context.Context, key, etag string) (io.ReadCloser, error) {
	if err := sluice.ValidateKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key, IfMatch: quoted(etag)})
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	return out.Body, nil
}

// GetRangeIf implements sluice.BlobStore: one ranged GetObject under
// If-Match, so there is no window between a look and the read.
func (s *Store) GetRangeIf(ctx context.Context, key, etag string, off, n int64) (io.ReadCloser, error) {
	if err := sluice.ValidateKey(key); err != nil {
		return nil, err
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("s3: range %d+%d of s3://%s/%s: negative", off, n, s.bucket, key)
	}
	if n == 0 { // S3 has no empty range: a HEAD under the same condition
		if _, err := s.head(ctx, key, etag); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	return s.getMatch(ctx, key, etag, &piece{off: off, n: n})
}

// head is HeadObject under If-Match of etag when it is set.
func (s *Store) head(ctx context.Context, key, etag string) (*s3.HeadObjectOutput, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key, IfMatch: quoted(etag)})
	if err != nil {
		return nil, s.wrap("stat", key, err)
	}
	return out, nil
}

// DeleteIf implements sluice.BlobStore with DeleteObject under If-Match
// (general purpose buckets since 2025; the caller needs s3:GetObject on
// the key as well as s3:DeleteObject). S3 answers 412 for another ETag,
// 404 for no object; a 409 (a write racing the delete) is an error to
// retry, after which the delete sees the new object and refuses.
func (s *Store) DeleteIf(ctx context.Context, key, etag string) error {
	if err := sluice.ValidateKey(key); err != nil {
		return err
	}
	if etag == "" {
		return fmt.Errorf("s3: conditional delete of s3://%s/%s without an ETag", s.bucket, key)
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key, IfMatch: quoted(etag)}); err != nil {
		return s.wrap("delete", key, err)
	}
	return nil
}

// CopyIf implements sluice.BlobStore. A HEAD under If-Match reads the
// source's size, headers and metadata; the copy then runs under
// x-amz-copy-source-if-match, so it copies that object or nothing, and
// replaces the metadata with the source's own plus copyOfMeta, carrying
// over what REPLACE would drop or a copy would not take from its source
// (copyHead). Over the copy limit (5 GiB, S3's CopyObject maximum) it is
// copied part by part, every part under the same condition.
//
// Where the source's user metadata leaves no room for copyOfMeta (S3's
// 2 KB limit, metaFits), the copy keeps the source's metadata as it is
// (COPY directive) without it, and says so in the log. The copy is then
// known only by its own ETag: a plain upload's copy (not SSE-KMS) keeps its
// ETag and is recognised, but a copy of a multipart upload is not, so a
// split that crashed after archiving such a file and removing its input
// finds no archive of its upload and the batch fails with the clear
// "deleted before it could be read" reason, never reading another upload.
func (s *Store) CopyIf(ctx context.Context, src, dst, etag string) error {
	if err := sluice.ValidateKey(src); err != nil {
		return err
	}
	if err := sluice.ValidateKey(dst); err != nil {
		return err
	}
	if etag == "" {
		return fmt.Errorf("s3: conditional copy of s3://%s/%s without an ETag", s.bucket, src)
	}
	out, err := s.head(ctx, src, etag)
	if err != nil {
		return err
	}
	h := headOf(out, etag)
	if h.noCopyOf {
		slog.Warn("the source's user metadata leaves no room for the copy's record of its source (S3's 2 KB limit): copied without it",
			"bucket", s.bucket, "src", src, "dst", dst, "etag", etag)
	}
	if size := aws.ToInt64(out.ContentLength); size > s.opt.CopyLimit {
		return s.copyLarge(ctx, src, dst, size, h)
	}
	_, err = s.client.CopyObject(ctx, h.copyInput(s.bucket, s.copySource(src), dst))
	if err != nil {
		return s.wrap("copy "+src+" to", dst, err)
	}
	return nil
}

// maxUserMeta is S3's limit on an object's user metadata: the UTF-8 bytes
// of its keys and values.
const maxUserMeta = 2048

// metaFits tells whether meta is within S3's user metadata limit.
func metaFits(meta map[string]string) bool {
	n := 0
	for k, v := range meta {
		n += len(k) + len(v)
	}
	return n <= maxUserMeta
}

// copyHead is what a copy carries over from its source when its metadata
// is replaced (CopyIf) or made anew (copyLarge's multipart upload), and
// the ETag the source must still have (ifMatch, "" for none). The
// encryption and storage class are not metadata: a copy takes the
// bucket's defaults unless told, so they are carried in either case.
type copyHead struct {
	ifMatch                             string
	meta                                map[string]string
	noCopyOf                            bool // meta is the source's alone: copyOfMeta did not fit
	contentType, contentEncoding        *string
	contentDisposition, contentLanguage *string
	cacheControl, websiteRedirect       *string
	expires                             *time.Time
	sse                                 types.ServerSideEncryption
	kmsKeyID                            *string
	bucketKey                           *bool
	storageClass                        types.StorageClass
}

// headOf is the copyHead of a source HEAD found with ETag etag.
func headOf(out *s3.HeadObjectOutput, etag string) copyHead {
	meta := maps.Clone(out.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[copyOfMeta] = etag
	h := copyHead{ifMatch: etag, meta: meta,
		contentType: out.ContentType, contentEncoding: out.ContentEncoding,
		contentDisposition: out.ContentDisposition, contentLanguage: out.ContentLanguage, cacheControl: out.CacheControl,
		websiteRedirect: out.WebsiteRedirectLocation, expires: out.Expires, //nolint:staticcheck // the parsed header is what a copy takes
		sse: out.ServerSideEncryption, kmsKeyID: out.SSEKMSKeyId, bucketKey: out.BucketKeyEnabled, storageClass: out.StorageClass}
	if !metaFits(meta) {
		delete(meta, copyOfMeta)
		h.noCopyOf = true
	}
	return h
}

// copyInput is the CopyObject of a copy to key with h's headers: the
// source's metadata replaced by h's, or kept as it is (COPY) when
// copyOfMeta did not fit.
func (h copyHead) copyInput(bucket, source, key string) *s3.CopyObjectInput {
	in := &s3.CopyObjectInput{Bucket: &bucket, Key: &key, CopySource: &source, CopySourceIfMatch: quoted(h.ifMatch),
		ServerSideEncryption: h.sse, SSEKMSKeyId: h.kmsKeyID, BucketKeyEnabled: h.bucketKey, StorageClass: h.storageClass}
	if h.noCopyOf {
		in.MetadataDirective = types.MetadataDirectiveCopy
		return in
	}
	in.MetadataDirective = types.MetadataDirectiveReplace
	in.Metadata = h.meta
	in.ContentType, in.ContentEncoding, in.ContentDisposition = h.contentType, h.contentEncoding, h.contentDisposition
	in.ContentLanguage, in.CacheControl = h.contentLanguage, h.cacheControl
	in.WebsiteRedirectLocation, in.Expires = h.websiteRedirect, h.expires
	return in
}

// upload is the CreateMultipartUpload of a copy to key with h's headers.
func (h copyHead) upload(bucket, key string) *s3.CreateMultipartUploadInput {
	return &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key, Metadata: h.meta,
		ContentType: h.contentType, ContentEncoding: h.contentEncoding, ContentDisposition: h.contentDisposition,
		ContentLanguage: h.contentLanguage, CacheControl: h.cacheControl,
		WebsiteRedirectLocation: h.websiteRedirect, Expires: h.expires,
		ServerSideEncryption: h.sse, SSEKMSKeyId: h.kmsKeyID, BucketKeyEnabled: h.bucketKey, StorageClass: h.storageClass}
}
