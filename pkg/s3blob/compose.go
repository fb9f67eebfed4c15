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

// piece is a byte range of one source, or of the head (src -1).
type piece struct {
	src    int
	off, n int64
}

// segment is one part of a composed object: a range of one source copied
// on the server (copy), or bytes this process uploads (the head and/or
// ranges read back), because S3 refuses parts under 5 MiB anywhere but
// last.
type segment struct {
	copy   bool
	pieces []piece // one for a copy
	size   int64
}

// planSegments cuts head and sources into parts of at least lo bytes
// (but the last) and at most hi. A source that starts a part and reaches
// lo is copied on the server; short sources are uploaded, gathered until
// their part reaches lo. An uploaded part is topped up with only as much
// of the next source as it lacks when the rest of that source still
// reaches lo and can be copied: so a short source costs at most lo
// uploaded bytes, not the whole of its neighbour.
func planSegments(head int64, sizes []int64, lo, hi int64) []segment {
	var out []segment
	cur := segment{}
	if head > 0 {
		cur = segment{pieces: []piece{{src: -1, n: head}}, size: head}
	}
	for i, n := range sizes {
		if n == 0 {
			continue // an empty source adds nothing, and S3 refuses empty parts
		}
		if cur.size >= lo {
			out, cur = append(out, cur), segment{}
		}
		off := int64(0)
		if cur.size > 0 {
			need := lo - cur.size
			if n-need < lo {
				cur.pieces = append(cur.pieces, piece{src: i, n: n})
				cur.size += n
				continue
			}
			cur.pieces = append(cur.pieces, piece{src: i, n: need})
			cur.size += need
			out, cur, off = append(out, cur), segment{}, need
		}
		if n-off < lo {
			cur = segment{pieces: []piece{{src: i, n: n}}, size: n}
			continue
		}
		out = append(out, copies(i, off, n-off, hi)...)
	}
	if cur.size > 0 || len(out) == 0 {
		out = append(out, cur)
	}
	return out
}

// copies cuts n bytes of source i from off into as few equal server-side
// copies as S3's largest part allows; equal, so that none falls under the
// minimum (hi is far more than twice it).
func copies(i int, off, n, hi int64) []segment {
	k := (n + hi - 1) / hi
	out := make([]segment, 0, k)
	for j := range k {
		a, b := off+n*j/k, off+n*(j+1)/k
		out = append(out, segment{copy: true, pieces: []piece{{src: i, off: a, n: b - a}}, size: b - a})
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
	infos, err := s.stats(ctx, srcs)
	if err != nil {
		return sluice.BlobInfo{}, "", err
	}
	total := int64(len(head))
	sizes, etags := make([]int64, len(infos)), make([]string, len(infos))
	for i, in := range infos {
		sizes[i], etags[i] = in.Size, in.ETag
		total += in.Size
	}
	if s.noPartCopy.Load() {
		return s.composeStreamed(ctx, dst, head, srcs, total)
	}
	plan := planSegments(int64(len(head)), sizes, minPartSize, maxPartSize)
	copied := 0
	for _, p := range plan {
		if p.copy {
			copied++
		}
	}
	if copied == 0 || len(plan) > maxParts {
		return s.composeStreamed(ctx, dst, head, srcs, total)
	}
	hctx, cancel := context.WithCancel(ctx)
	sums := s.hashSources(hctx, head, srcs, etags)
	var h hashed
	// The upload completes only once its sources are hashed, and to the
	// size planned: a source that changed meanwhile fails the compose.
	info, err := s.composeParts(ctx, dst, head, pinned{srcs, etags}, plan, func(size int64) error {
		if h = <-sums; h.err == nil && h.size != size {
			h.err = fmt.Errorf("read %d bytes, planned %d", h.size, size)
		}
		if h.err != nil {
			return fmt.Errorf("s3: compose s3://%s/%s: hashing its sources: %w", s.bucket, dst, h.err)
		}
		return nil
	})
	cancel()
	if h == (hashed{}) {
		<-sums // composeParts failed before it waited: let the reader stop
	}
	if errors.Is(err, errNoPartCopy) {
		s.noPartCopy.Store(true)
		slog.Info("the store does not do UploadPartCopy; merges stream their bytes", "bucket", s.bucket)
		return s.composeStreamed(ctx, dst, head, srcs, total)
	}
	if err != nil {
		return sluice.BlobInfo{}, "", err
	}
	return info, h.sum, nil
}

type hashed struct {
	sum  string
	size int64
	err  error
}

// hashSources computes the SHA-256 of head and the sources in order, by
// reading them while the parts are copied, and sends it once. The merge
// records the output's SHA-256, which cannot be combined from the parts'
// digests: this reads the same bytes as reading the output back would, in
// parallel with the copy, and with the read grant the merger already has
// on the parts (it has none on the output). Each source is read under
// If-Match of the ETag planned, as its ranges are copied and read under
// the same condition: the hashed bytes are the composed bytes, or the
// compose fails (a part rewritten meanwhile) and the merge is retried.
func (s *Store) hashSources(ctx context.Context, head []byte, srcs, etags []string) <-chan hashed {
	out := make(chan hashed, 1)
	go func() {
		h := sha256.New()
		objs := &objectsReader{ctx: ctx, s: s, keys: srcs, etags: etags}
		defer objs.Close()
		n, err := io.Copy(h, io.MultiReader(bytes.NewReader(head), objs))
		out <- hashed{hex.EncodeToString(h.Sum(nil)), n, err}
	}()
	return out
}

// maxParts is S3's limit of parts in one multipart upload.
const maxParts = 10000

var errNoPartCopy = errors.New("UploadPartCopy not supported")

// pinned are the sources of a compose and the ETag each was planned with.
type pinned struct {
	keys, etags []string
}

// stats finds the sources' sizes and ETags with a HEAD each: the merger
// may read the parts but is not granted ListBucket.
func (s *Store) stats(ctx context.Context, srcs []string) ([]sluice.BlobInfo, error) {
	out := make([]sluice.BlobInfo, len(srcs))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, k := range srcs {
		g.Go(func() error {
			info, err := s.Stat(ctx, k)
			if err != nil {
				return fmt.Errorf("s3: compose from %s: %w", k, err)
			}
			out[i] = info
			return nil
		})
	}
	return out, g.Wait()
}

// composeStreamed is Compose by reading every source through this process;
// total, the sum of the sizes, sizes the upload's parts.
func (s *Store) composeStreamed(ctx context.Context, dst string, head []byte, srcs []string, total int64) (sluice.BlobInfo, string, error) {
	h := sha256.New()
	objs := &objectsReader{ctx: ctx, s: s, keys: srcs}
	defer objs.Close()
	r := io.TeeReader(io.MultiReader(bytes.NewReader(head), objs), h)
	info, err := s.putSized(ctx, dst, r, total)
	if err != nil {
		return sluice.BlobInfo{}, "", err
	}
	return info, hex.EncodeToString(h.Sum(nil)), nil
}

// objectsReader reads objects one after another, one open at a time;
// with etags, each under If-Match of its ETag.
type objectsReader struct {
	ctx   context.Context
	s     *Store
	keys  []string
	etags []string
	cur   io.ReadCloser
}

// Close closes the object being read, if a read stopped in the middle.
func (o *objectsReader) Close() error {
	if o.cur != nil {
		o.cur.Close()
		o.cur = nil
	}
	return nil
}

func (o *objectsReader) Read(p []byte) (int, error) {
	for {
		if o.cur == nil {
			if len(o.keys) == 0 {
				return 0, io.EOF
			}
			var match string
			if len(o.etags) > 0 {
				match, o.etags = o.etags[0], o.etags[1:]
			}
			r, err := o.s.getMatch(o.ctx, o.keys[0], match, nil)
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
// Before it completes the upload it calls ready with the planned size;
// an error aborts the upload.
func (s *Store) composeParts(ctx context.Context, dst string, head []byte, srcs pinned, plan []segment, ready func(size int64) error) (sluice.BlobInfo, error) {
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
	if err := ready(size); err != nil {
		s.abort(dst, up.UploadId)
		return sluice.BlobInfo{}, err
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
func (s *Store) composePart(ctx context.Context, dst string, id *string, num *int32, head []byte, srcs pinned, seg segment) (*string, error) {
	if seg.copy {
		p := seg.pieces[0]
		out, err := s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: &s.bucket, Key: &dst, UploadId: id, PartNumber: num,
			CopySource:      aws.String(s.copySource(srcs.keys[p.src])),
			CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", p.off, p.off+p.n-1)),
			// The version hashed, or PreconditionFailed.
			CopySourceIfMatch: quoted(srcs.etags[p.src]),
		})
		var ae smithy.APIError
		if errors.As(err, &ae) && (ae.ErrorCode() == "NotImplemented" || ae.ErrorCode() == "MissingContentLength") {
			return nil, errNoPartCopy
		}
		if err != nil {
			return nil, s.wrap("compose part copy of", srcs.keys[p.src], err)
		}
		if out.CopyPartResult == nil || out.CopyPartResult.ETag == nil {
			return nil, errNoPartCopy // answered as a plain part: nothing was copied
		}
		return out.CopyPartResult.ETag, nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, seg.size))
	for _, p := range seg.pieces {
		if p.src < 0 {
			buf.Write(head)
			continue
		}
		if err := s.readRange(ctx, buf, srcs.keys[p.src], srcs.etags[p.src], p); err != nil {
			return nil, fmt.Errorf("s3: compose s3://%s/%s: %w", s.bucket, dst, err)
		}
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

// readRange appends piece p of source key to buf, and fails unless it got
// exactly p.n bytes: a source that changed size since it was planned.
func (s *Store) readRange(ctx context.Context, buf *bytes.Buffer, key, etag string, p piece) error {
	if p.n == 0 {
		return nil // S3 has no empty range; the hash reader checks the source
	}
	r, err := s.getMatch(ctx, key, etag, &p)
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := buf.ReadFrom(io.LimitReader(r, p.n+1))
	if err != nil {
		return err
	}
	if n != p.n {
		return fmt.Errorf("%s: read %d bytes at %d, planned %d", key, n, p.off, p.n)
	}
	return nil
}

// getMatch reads key, or the range of piece p, under If-Match of etag
// when it is set: a source rewritten since it was planned fails with
// PreconditionFailed instead of giving other bytes.
func (s *Store) getMatch(ctx context.Context, key, etag string, p *piece) (io.ReadCloser, error) {
	if err := sluice.ValidateKey(key); err != nil {
		return nil, err
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key, IfMatch: quoted(etag)}
	if p != nil {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", p.off, p.off+p.n-1))
	}
	// See GetRange on checksum validation of ranged reads.
	out, err := s.client.GetObject(ctx, in, func(o *s3.Options) { o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired })
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	return out.Body, nil
}

// quoted is an ETag as S3's conditional headers take it, nil for none.
func quoted(etag string) *string {
	if etag == "" {
		return nil
	}
	return aws.String(`"` + etag + `"`)
}
