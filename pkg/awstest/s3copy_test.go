package awstest_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/sluicehq/sluice/pkg/awstest"
)

// TestS3CopyEnforcesPartRules: the S3Copy endpoint copies ranges with
// UploadPartCopy, refuses a multipart upload whose non-last part is under
// 5 MiB or whose ETag is wrong (s3rver alone would store either), and
// counts what crossed the wire.
func TestS3CopyEnforcesPartRules(t *testing.T) {
	env := awstest.New(t, awstest.S3Copy)
	ctx := t.Context()
	c := s3.NewFromConfig(env.Config(awstest.S3Copy), func(o *s3.Options) { o.UsePathStyle = true })
	name := fmt.Sprintf("rules-%d", time.Now().UnixNano()%1e9) // LocalStack keeps buckets between runs
	b := aws.String(name)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	src := bytes.Repeat([]byte("0123456789"), awstest.MinPartSize/10+1) // just over 5 MiB
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("src"), Body: bytes.NewReader(src)}); err != nil {
		t.Fatal(err)
	}
	up := uploader{c: c, bucket: name}
	upload := func(key string, parts ...any) error { return up.upload(t, key, parts...) }
	code := func(err error) string {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return ae.ErrorCode()
		}
		return ""
	}
	before := env.S3Traffic(name)
	// A full-size copied part, then a short ranged copy as the last part.
	if err := upload("ok", "bytes=0-5242879", "bytes=3-12"); err != nil {
		t.Fatalf("valid upload: %v", err)
	}
	ops := env.S3Traffic(name).Sub(before)
	if !env.External() && (ops["UploadPartCopy"].Calls != 2 || ops["UploadPartCopy"].In != 0 || ops["CompleteMultipartUpload"].Calls != 1) {
		t.Errorf("traffic %+v", ops)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("ok")})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	got.ReadFrom(out.Body)
	out.Body.Close()
	if want := append(append([]byte(nil), src[:5<<20]...), src[3:13]...); !bytes.Equal(got.Bytes(), want) {
		t.Errorf("ranged copies gave %d bytes, want %d", got.Len(), len(want))
	}
	if err := upload("small", "bytes=0-99", []byte("tail")); code(err) != "EntityTooSmall" {
		t.Errorf("a 100-byte first part: %v, want EntityTooSmall", err)
	}
	if err := upload("badtag", "bytes=0-5242879"); code(err) != "InvalidPart" {
		t.Errorf("a wrong ETag: %v, want InvalidPart", err)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("small")}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a refused upload left an object: %v", err)
	}
}

// uploader makes multipart uploads of parts given as a copy range of
// bucket/src ("bytes=a-b") or a body ([]byte); key "badtag" completes with
// a wrong ETag for part 1.
type uploader struct {
	c      *s3.Client
	bucket string
}

func (u uploader) upload(t *testing.T, key string, parts ...any) error {
	ctx, b := t.Context(), aws.String(u.bucket)
	up, err := u.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String(key)})
	if err != nil {
		return err
	}
	var done []types.CompletedPart
	for i, p := range parts {
		n := aws.Int32(int32(i + 1))
		var tag *string
		switch p := p.(type) {
		case string:
			out, err := u.c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: b, Key: aws.String(key), UploadId: up.UploadId, PartNumber: n,
				CopySource: aws.String(u.bucket + "/src"), CopySourceRange: aws.String(p)})
			if err != nil {
				return err
			}
			tag = out.CopyPartResult.ETag
		case []byte:
			out, err := u.c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String(key), UploadId: up.UploadId, PartNumber: n, Body: bytes.NewReader(p)})
			if err != nil {
				return err
			}
			tag = out.ETag
		}
		done = append(done, types.CompletedPart{PartNumber: n, ETag: tag})
	}
	if key == "badtag" {
		done[0].ETag = aws.String(`"00000000000000000000000000000000"`)
	}
	_, err = u.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
	return err
}
