// Package s3blob is the sluice.BlobStore on an Amazon S3 bucket (or
// anything that speaks its API: gofakes3 in tests, LocalStack, MinIO).
//
// Put never needs to know a body's length or to seek in it: the SDK's
// transfer manager (feature/s3/transfermanager) reads a part-sized buffer
// first, sends a small body as one PutObject and a larger one as a
// multipart upload of buffered parts, in parallel, and aborts the upload if
// anything fails. Buffered parts let the SDK sign and checksum every request
// from memory, which also works over plain HTTP where an unseekable
// streaming body could not be signed.
package s3blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// S3's limits for multipart uploads.
const (
	minPartSize = 5 << 20
	maxPartSize = 5 << 30
	// maxCopySize is the largest object CopyObject copies in one call.
	maxCopySize = 5 << 30
	// maxPresign is the longest a SigV4 presigned URL may live.
	maxPresign = 7 * 24 * time.Hour
)

// Options configure a Store.
type Options struct {
	// PathStyle addresses the bucket as http://host/bucket/key instead of
	// http://bucket.host/key: emulators and LocalStack need it.
	PathStyle bool
	// PartSize is the size of the buffered parts of a multipart upload, and
	// the size below which Put sends one PutObject. Default 8 MiB, at least
	// 5 MiB (S3's minimum). A body of unknown length may have at most
	// 10 000 parts: with the default, about 78 GiB. Compose's streamed
	// fallback knows its total and sizes its parts to fit (partSizeFor).
	PartSize int64
	// Concurrency is how many parts upload at once; memory use of a Put is
	// about Concurrency+1 parts. Default 4.
	Concurrency int
	// LinkTTL is how long a link lives when Link is asked for ttl <= 0.
	// Default one hour.
	LinkTTL time.Duration
	// CopyLimit is the largest object CopyIf copies with one CopyObject;
	// larger ones are copied part by part. Default and maximum 5 GiB,
	// S3's limit; tests lower it to take the part-by-part path.
	CopyLimit int64
}

// Option changes Options.
type Option func(*Options)

// WithPathStyle makes the store use path-style URLs.
func WithPathStyle() Option { return func(o *Options) { o.PathStyle = true } }

// WithPartSize sets Options.PartSize.
func WithPartSize(n int64) Option { return func(o *Options) { o.PartSize = n } }

// WithConcurrency sets Options.Concurrency.
func WithConcurrency(n int) Option { return func(o *Options) { o.Concurrency = n } }

// WithCopyLimit sets Options.CopyLimit.
func WithCopyLimit(n int64) Option { return func(o *Options) { o.CopyLimit = n } }

// WithLinkTTL sets Options.LinkTTL.
func WithLinkTTL(d time.Duration) Option { return func(o *Options) { o.LinkTTL = d } }

// Store is one S3 bucket.
type Store struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
	opt     Options
	uploads *transfermanager.Client
	creds   aws.CredentialsProvider
	// noPartCopy is set once the store answered UploadPartCopy as if it
	// did not know it (an emulator): Compose then streams.
	noPartCopy atomic.Bool
}

var _ sluice.BlobStore = (*Store)(nil)

// New returns the store for bucket. cfg comes from config.LoadDefaultConfig
// in the services, so AWS_ENDPOINT_URL_S3 and the rest of the SDK's
// configuration chain apply.
func New(cfg aws.Config, bucket string, opts ...Option) *Store {
	o := Options{PartSize: 8 << 20, Concurrency: 4, LinkTTL: time.Hour, CopyLimit: maxCopySize}
	for _, f := range opts {
		f(&o)
	}
	if o.CopyLimit <= 0 || o.CopyLimit > maxCopySize {
		o.CopyLimit = maxCopySize
	}
	o.PartSize = min(max(o.PartSize, minPartSize), maxPartSize)
	o.Concurrency = max(o.Concurrency, 1)
	if o.LinkTTL <= 0 {
		o.LinkTTL = time.Hour
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.PathStyle {
			so.UsePathStyle = true
		}
	})
	uploads := transfermanager.New(client, func(t *transfermanager.Options) {
		t.PartSizeBytes, t.MultipartUploadThreshold = o.PartSize, o.PartSize
		t.Concurrency = o.Concurrency
		// Aborting a failed upload must not depend on the caller's
		// context: it may be the reason for the failure.
		t.FailTimeout = 30 * time.Second
	})
	return &Store{client: client, presign: s3.NewPresignClient(client), uploads: uploads, bucket: bucket, opt: o, creds: cfg.Credentials}
}

// Client is the underlying S3 client, for setup such as creating the bucket.
func (s *Store) Client() *s3.Client { return s.client }

// Bucket implements sluice.BlobStore.
func (s *Store) Bucket() string { return s.bucket }

// isNotFound tells a missing object (or bucket) from other failures. HEAD
// responses carry no error body, so the status code is all there is.
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound") {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// isPreconditionFailed tells S3's answer to an If-Match (or
// x-amz-copy-source-if-match) that named another ETag: 412; a HEAD has no
// body to carry the code.
func isPreconditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed" {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
}

func (s *Store) wrap(op, key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("s3: %s s3://%s/%s: %w", op, s.bucket, key, sluice.ErrNotFound)
	}
	if isPreconditionFailed(err) {
		return fmt.Errorf("s3: %s s3://%s/%s: %w: %w", op, s.bucket, key, sluice.ErrETagMismatch, err)
	}
	return fmt.Errorf("s3: %s s3://%s/%s: %w", op, s.bucket, key, err)
}

// etag strips the quotes S3 keeps around ETags, so they compare equal to
// the ones in event notifications.
func etag(p *string) string { return strings.Trim(aws.ToString(p), `"`) }

// Get implements sluice.BlobStore. The body streams from S3 as the caller
// reads it.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := sluice.ValidateKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	return out.Body, nil
}

// Stat implements sluice.BlobStore.
func (s *Store) Stat(ctx context.Context, key string) (sluice.BlobInfo, error) {
	if err := sluice.ValidateKey(key); err != nil {
		return sluice.BlobInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return sluice.BlobInfo{}, s.wrap("stat", key, err)
	}
	return sluice.BlobInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: etag(out.ETag), Modified: aws.ToTime(out.LastModified), CopyOf: out.Metadata[copyOfMeta]}, nil
}

// List implements sluice.BlobStore.
func (s *Store) List(ctx context.Context, prefix string) ([]sluice.BlobInfo, error) {
	var out []sluice.BlobInfo
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3: list s3://%s/%s: %w", s.bucket, prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, sluice.BlobInfo{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ETag: etag(o.ETag), Modified: aws.ToTime(o.LastModified)})
		}
	}
	// S3 lists in UTF-8 byte order already; emulators may not.
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// copySource is the x-amz-copy-source value: bucket and key with every byte
// but the unreserved ones and the slashes percent-encoded. Encoding '+'
// matters: S3 and its emulators decode the value as a query string would,
// where a bare '+' means a space.
func (s *Store) copySource(key string) string {
	const hex = "0123456789ABCDEF"
	src := s.bucket + "/" + key
	var b strings.Builder
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-_.~/", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// Copy implements sluice.BlobStore. Objects over 5 GiB, which CopyObject
// refuses, are copied part by part on the server side.
func (s *Store) Copy(ctx context.Context, src, dst string) error {
	if err := sluice.ValidateKey(src); err != nil {
		return err
	}
	if err := sluice.ValidateKey(dst); err != nil {
		return err
	}
	_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &s.bucket, Key: &dst, CopySource: aws.String(s.copySource(src))})
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "InvalidRequest" || ae.ErrorCode() == "EntityTooLarge") {
		if info, serr := s.Stat(ctx, src); serr == nil && info.Size > maxCopySize {
			return s.copyLarge(ctx, src, dst, info.Size, copyHead{})
		}
	}
	return s.wrap("copy "+src+" to", dst, err)
}

// copyLarge copies src part by part (UploadPartCopy), as S3 requires over
// 5 GiB. h gives the copy its headers and metadata (a multipart upload
// takes nothing from its sources) and the source's ETag every part is
// copied under, when set.
func (s *Store) copyLarge(ctx context.Context, src, dst string, size int64, h copyHead) error {
	const part = 1 << 30
	up, err := s.client.CreateMultipartUpload(ctx, h.upload(s.bucket, dst))
	if err != nil {
		return s.wrap("copy "+src+" to", dst, err)
	}
	var parts []types.CompletedPart
	for n, off := int32(1), int64(0); off < size; n, off = n+1, off+part {
		end := min(off+part, size) - 1
		out, err := s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: &s.bucket, Key: &dst, UploadId: up.UploadId, PartNumber: aws.Int32(n),
			CopySource: aws.String(s.copySource(src)), CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
			CopySourceIfMatch: quoted(h.ifMatch),
		})
		if err != nil {
			s.abort(dst, up.UploadId)
			return s.wrap("copy "+src+" to", dst, err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.CopyPartResult.ETag})
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &dst, UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		s.abort(dst, up.UploadId)
		return s.wrap("copy "+src+" to", dst, err)
	}
	return nil
}

// Delete implements sluice.BlobStore. S3 answers 204 for a missing key too.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := sluice.ValidateKey(key); err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil && !isNotFound(err) {
		return s.wrap("delete", key, err)
	}
	return nil
}

// Link implements sluice.BlobStore with a presigned GET. S3 does not look
// at the object when presigning: a link to a missing key is made, and fails
// when followed.
func (s *Store) Link(ctx context.Context, key string, ttl time.Duration) (string, time.Time, error) {
	return s.LinkAs(ctx, key, "", ttl)
}

// LinkAs is Link for a download saved as filename (Content-Disposition):
// artefact keys are named by batch and chunk, the file by its input's name.
func (s *Store) LinkAs(ctx context.Context, key, filename string, ttl time.Duration) (string, time.Time, error) {
	if err := sluice.ValidateKey(key); err != nil {
		return "", time.Time{}, err
	}
	if ttl <= 0 {
		ttl = s.opt.LinkTTL
	}
	ttl = min(ttl, maxPresign)
	// A link lives at most as long as the credentials that signed it: with a
	// task role's temporary credentials that can be less than ttl. Nothing
	// here can lengthen that, so report the real, shorter lifetime.
	expires := time.Now().Add(ttl)
	if s.creds != nil {
		if c, err := s.creds.Retrieve(ctx); err == nil && c.CanExpire && c.Expires.Before(expires) {
			slog.Warn("the presigned link dies with its signing credentials, before the configured expiry",
				"key", key, "configured", ttl.String(), "expires", c.Expires.UTC().Format(time.RFC3339))
			expires = c.Expires
		}
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	if filename != "" {
		in.ResponseContentDisposition = aws.String(mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	}
	req, err := s.presign.PresignGetObject(ctx, in, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", time.Time{}, s.wrap("presign", key, err)
	}
	return req.URL, expires, nil
}

// Put implements sluice.BlobStore. S3 makes an object visible only when its
// PutObject or CompleteMultipartUpload succeeds, so readers never see a
// partial one; a failed multipart upload is aborted.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (sluice.BlobInfo, error) {
	return s.putSized(ctx, key, r, -1)
}

// putSized is Put of a body whose length is known to be total (-1 when
// unknown): its parts are made large enough that total fits in S3's
// 10,000 parts, where the configured part size caps a body at about 78 GiB.
func (s *Store) putSized(ctx context.Context, key string, r io.Reader, total int64) (sluice.BlobInfo, error) {
	if err := sluice.ValidateKey(key); err != nil {
		return sluice.BlobInfo{}, err
	}
	body := &countingReader{r: r}
	part := partSizeFor(total, s.opt.PartSize)
	out, err := s.uploads.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: &s.bucket, Key: &key, Body: body}, func(o *transfermanager.Options) {
		o.PartSizeBytes = part
	})
	if err != nil {
		if body.err != nil {
			// The body failed, not S3: say so, with the body's own error.
			return sluice.BlobInfo{}, fmt.Errorf("s3: put s3://%s/%s: reading the body: %w", s.bucket, key, body.err)
		}
		return sluice.BlobInfo{}, s.wrap("put", key, err)
	}
	return s.written(ctx, key, body.n, etag(out.ETag)), nil
}

// partSizeFor is the part size that fits total bytes in maxParts parts:
// base, or total/maxParts rounded up to a MiB when that is larger (at most
// S3's 5 GiB part, which with 10,000 parts covers S3's 5 TiB object).
func partSizeFor(total, base int64) int64 {
	if total <= 0 {
		return base
	}
	const mib = 1 << 20
	need := (total + maxParts - 1) / maxParts
	need = (need + mib - 1) / mib * mib
	return min(max(base, need), maxPartSize)
}

// countingReader counts what the upload read, for BlobInfo.Size, and keeps
// the body's own error apart from S3's.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// written describes an object just written, with the local clock for its
// time. S3's LastModified would take a HEAD, which a writer's least-privilege
// role may not make (s3:GetObject on what it only writes): on AWS it was
// refused, and the observed-calls test (services/privilege_test.go) found it.
func (s *Store) written(_ context.Context, key string, size int64, tag string) sluice.BlobInfo {
	return sluice.BlobInfo{Key: key, Size: size, ETag: tag, Modified: time.Now().UTC().Truncate(time.Second)}
}

// abort gives up a multipart upload so that its parts stop costing storage.
// It runs on its own context: the caller's may be the reason for giving up.
func (s *Store) abort(key string, uploadID *string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: uploadID})
	if err != nil {
		// Its parts stay billed until the bucket's lifecycle rule for
		// incomplete uploads removes them: say so, with what to look for.
		slog.Warn("aborting a multipart upload failed; its parts stay until the bucket's abort-incomplete-uploads lifecycle rule", "bucket", s.bucket, "key", key, "upload_id", aws.ToString(uploadID), "err", err.Error())
	}
}

// PresignPut returns a URL a client can PUT an object to without
// credentials, valid for ttl (at most a week, and no longer than the
// signing credentials), and the time it stops working.
func (s *Store) PresignPut(ctx context.Context, key string, ttl time.Duration) (string, time.Time, error) {
	if err := sluice.ValidateKey(key); err != nil {
		return "", time.Time{}, err
	}
	ttl = min(max(ttl, time.Minute), maxPresign)
	expires := time.Now().Add(ttl)
	if s.creds != nil {
		if c, err := s.creds.Retrieve(ctx); err == nil && c.CanExpire && c.Expires.Before(expires) {
			expires = c.Expires
		}
	}
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", time.Time{}, s.wrap("presign put", key, err)
	}
	return req.URL, expires, nil
}
