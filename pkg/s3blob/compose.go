package s3blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/pkg/sluice"
)

var _ sluice.Composer = (*Store)(nil)

// GetRange implements sluice.BlobStore with a ranged GetObject.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := sluice.ValidateKey(key); err != nil {
		return nil, err
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("s3: range %d+%d of s3://%s/%s: negative", off, n, s.bucket, key)
	}
	if n == 0 { // S3 has no empty range; the object must still exist
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	// No response checksum validation: a stored full-object checksum
	// (what multipart uploads with CRC32 keep) covers the whole object, not
	// the range, and emulators send it back with ranged reads anyway.
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &s.bucket, Key: &key, Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
	}, func(o *s3.Options) { o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired })
	if err != nil {
		return nil, s.wrap("get range of", key, err)
	}
	return out.Body, nil
}

// segment is one part of a composed object: either a whole source object
// copied on the server (copy >= 0), or bytes this process uploads: the
// head and/or sources read back (inline), because S3 refuses parts under
// 5 MiB anywhere but last.
type segment struct {
	copy   int   // index into the sources; -1 for an inline part
	inline []int // sources read into an inline part, after the head if first
	head   bool
	size   int64
}

// planSegments groups head and sources into parts: a source of at least
// min bytes is copied on the server unless it must top up a short inline
// part before it; short ones are gathered until their part reaches min.
func planSegments(head int64, sizes []int64, min int64) []segment {
	var out []segment
	cur := segment{copy: -1, head: head > 0, size: head}
	for i, n := range sizes {
		if n == 0 {
			continue // an empty source adds nothing, and S3 refuses empty parts
		}
		if cur.size >= min {
			out = append(out, cur)
			cur = segment{copy: -1}
		}
		if cur.size == 0 && n >= min {
			out = append(out, segment{copy: i, size: n})
			continue
		}
		cur.inline = append(cur.inline, i)
		cur.size += n
	}
	if cur.size > 0 || len(out) == 0 {
		out = append(out, cur)
	}
	return out
}

// Compose implements sluice.Composer: a multipart upload whose parts are
// UploadPartCopy of the sources where they are big enough, so their bytes
// never leave S3. Stores without UploadPartCopy (gofakes3, the test
// emulator, answers it as a plain part without a body) get the bytes
// streamed through Put instead, once noticed.
func (s *Store) Compose(ctx context.Context, dst string, head []byte, srcs []string) (sluice.BlobInfo, string, error) {
	if err := sluice.ValidateKey(dst); err != nil {
		return sluice.BlobInfo{}, "", err
	}
	if s.noPartCopy.Load() {
		return s.composeStreamed(ctx, dst, head, srcs)
	}
	sizes, err := s.sizes(ctx, srcs)
	if err != nil {
		return sluice.BlobInfo{}, "", err
	}
	plan := planSegments(int64(len(head)), sizes, minPartSize)
	copies := 0
	for _, p := range plan {
		if p.copy >= 0 {
			copies++
		}
	}
	if copies == 0 || len(plan) > maxParts {
		return s.composeStreamed(ctx, dst, head, srcs)
	}
	info, err := s.composeParts(ctx, dst, head, srcs, plan)
	if errors.Is(err, errNoPartCopy) {
		s.noPartCopy.Store(true)
		slog.Info("the store does not do UploadPartCopy; merges stream their bytes", "bucket", s.bucket)
		return s.composeStreamed(ctx, dst, head, srcs)
	}
	return info, "", err
}

// maxParts is S3's limit of parts in one multipart upload.
const maxParts = 10000

var errNoPartCopy = errors.New("UploadPartCopy not supported")

// sizes finds the sources' sizes with a HEAD each: the merger may read
// the parts but is not granted ListBucket.
func (s *Store) sizes(ctx context.Context, srcs []string) ([]int64, error) {
	out := make([]int64, len(srcs))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, k := range srcs {
		g.Go(func() error {
			info, err := s.Stat(ctx, k)
			if err != nil {
				return fmt.Errorf("s3: compose from %s: %w", k, err)
			}
			out[i] = info.Size
			return nil
		})
	}
	return out, g.Wait()
}

// composeStreamed is Compose by reading every source through this process.
func (s *Store) composeStreamed(ctx context.Context, dst string, head []byte, srcs []string) (sluice.BlobInfo, string, error) {
	h := sha256.New()
	r := io.TeeReader(io.MultiReader(bytes.NewReader(head), &objectsReader{ctx: ctx, s: s, keys: srcs}), h)
	info, err := s.Put(ctx, dst, r)
	if err != nil {
		return sluice.BlobInfo{}, "", err
	}
	return info, hex.EncodeToString(h.Sum(nil)), nil
}

// objectsReader reads objects one after another, one open at a time.
type objectsReader struct {
	ctx  context.Context
	s    *Store
	keys []string
	cur  io.ReadCloser
}

func (o *objectsReader) Read(p []byte) (int, error) {
	for {
		if o.cur == nil {
			if len(o.keys) == 0 {
				return 0, io.EOF
			}
			r, err := o.s.Get(o.ctx, o.keys[0])
			if err != nil {
				return 0, err
			}
			o.cur, o.keys = r, o.keys[1:]
		}
		n, err := o.cur.Read(p)
		if err == io.EOF {
			o.cur.Close()
			o.cur = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// composeParts runs the planned multipart upload, part by part.
func (s *Store) composeParts(ctx context.Context, dst string, head []byte, srcs []string, plan []segment) (sluice.BlobInfo, error) {
	up, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &dst})
	if err != nil {
		return sluice.BlobInfo{}, s.wrap("compose", dst, err)
	}
	parts := make([]types.CompletedPart, 0, len(plan))
	var size int64
	for i, seg := range plan {
		num := aws.Int32(int32(i + 1))
		etag, err := s.composePart(ctx, dst, up.UploadId, num, head, srcs, seg)
		if err != nil {
			s.abort(dst, up.UploadId)
			return sluice.BlobInfo{}, err
		}
		parts = append(parts, types.CompletedPart{PartNumber: num, ETag: etag})
		size += seg.size
	}
	out, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &dst, UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		s.abort(dst, up.UploadId)
		return sluice.BlobInfo{}, s.wrap("compose", dst, err)
	}
	return s.written(ctx, dst, size, etag(out.ETag)), nil
}

// composePart uploads one planned part and returns its ETag.
func (s *Store) composePart(ctx context.Context, dst string, id *string, num *int32, head []byte, srcs []string, seg segment) (*string, error) {
	if seg.copy >= 0 {
		out, err := s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: &s.bucket, Key: &dst, UploadId: id, PartNumber: num,
			CopySource: aws.String(s.copySource(srcs[seg.copy])),
		})
		var ae smithy.APIError
		if errors.As(err, &ae) && (ae.ErrorCode() == "NotImplemented" || ae.ErrorCode() == "MissingContentLength") {
			return nil, errNoPartCopy
		}
		if err != nil {
			return nil, s.wrap("compose part copy of", srcs[seg.copy], err)
		}
		if out.CopyPartResult == nil || out.CopyPartResult.ETag == nil {
			return nil, errNoPartCopy // answered as a plain part: nothing was copied
		}
		return out.CopyPartResult.ETag, nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, seg.size))
	if seg.head {
		buf.Write(head)
	}
	keys := make([]string, len(seg.inline))
	for i, j := range seg.inline {
		keys[i] = srcs[j]
	}
	if _, err := buf.ReadFrom(&objectsReader{ctx: ctx, s: s, keys: keys}); err != nil {
		return nil, fmt.Errorf("s3: compose s3://%s/%s: %w", s.bucket, dst, err)
	}
	out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: &s.bucket, Key: &dst, UploadId: id, PartNumber: num,
		Body: bytes.NewReader(buf.Bytes()), ContentLength: aws.Int64(int64(buf.Len())),
	})
	if err != nil {
		return nil, s.wrap("compose part of", dst, err)
	}
	return out.ETag, nil
}
