package s3blob

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"

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
// replaces the metadata with the source's own plus copyOfMeta. Over the
// copy limit (5 GiB, S3's CopyObject maximum) it is copied part by part,
// every part under the same condition.
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
	if size := aws.ToInt64(out.ContentLength); size > s.opt.CopyLimit {
		return s.copyLarge(ctx, src, dst, size, h)
	}
	_, err = s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: &s.bucket, Key: &dst, CopySource: aws.String(s.copySource(src)), CopySourceIfMatch: quoted(etag),
		MetadataDirective: types.MetadataDirectiveReplace, Metadata: h.meta,
		ContentType: h.contentType, ContentEncoding: h.contentEncoding, ContentDisposition: h.contentDisposition,
		ContentLanguage: h.contentLanguage, CacheControl: h.cacheControl,
	})
	if err != nil {
		return s.wrap("copy "+src+" to", dst, err)
	}
	return nil
}

// copyHead is what a copy carries over from its source when its metadata
// is replaced (CopyIf) or made anew (copyLarge's multipart upload), and
// the ETag the source must still have (ifMatch, "" for none).
type copyHead struct {
	ifMatch                             string
	meta                                map[string]string
	contentType, contentEncoding        *string
	contentDisposition, contentLanguage *string
	cacheControl                        *string
}

// headOf is the copyHead of a source HEAD found with ETag etag.
func headOf(out *s3.HeadObjectOutput, etag string) copyHead {
	meta := maps.Clone(out.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[copyOfMeta] = etag
	return copyHead{ifMatch: etag, meta: meta,
		contentType: out.ContentType, contentEncoding: out.ContentEncoding,
		contentDisposition: out.ContentDisposition, contentLanguage: out.ContentLanguage, cacheControl: out.CacheControl}
}

// upload is the CreateMultipartUpload of a copy to key with h's headers.
func (h copyHead) upload(bucket, key string) *s3.CreateMultipartUploadInput {
	return &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key, Metadata: h.meta,
		ContentType: h.contentType, ContentEncoding: h.contentEncoding, ContentDisposition: h.contentDisposition,
		ContentLanguage: h.contentLanguage, CacheControl: h.cacheControl}
}
