package console

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// BucketUploader is the Uploader of a console in front of the AWS
// deployment: the file goes to the bucket's input/, and the bucket's
// notification starts the batch, exactly as for a file dropped there by any
// other client. With a presigner it also hands browsers a presigned PUT, so
// a large file goes straight to S3.
type BucketUploader struct {
	Blobs sluice.BlobStore
	// Presign, when set, makes a PUT URL for key valid for about ttl.
	Presign func(ctx context.Context, key string, ttl time.Duration) (string, time.Time, error)
	// TTL of a presigned PUT; default 15 minutes.
	TTL time.Duration
}

var (
	_ Uploader    = (*BucketUploader)(nil)
	_ URLUploader = (*BucketUploader)(nil)
)

// Upload implements Uploader.
func (u *BucketUploader) Upload(ctx context.Context, name string, r io.Reader, size int64) (Upload, error) {
	key := pipeline.InputPrefix + name
	if _, err := u.Blobs.Put(ctx, key, r); err != nil {
		return Upload{}, err
	}
	return Upload{Key: key}, nil
}

// UploadURL implements URLUploader.
func (u *BucketUploader) UploadURL(ctx context.Context, name string) (UploadTarget, error) {
	if u.Presign == nil {
		return UploadTarget{}, errNoPresign
	}
	ttl := u.TTL
	if ttl <= 0 {
		ttl = 15 * time.Minute
	}
	key := pipeline.InputPrefix + name
	url, exp, err := u.Presign(ctx, key, ttl)
	if err != nil {
		return UploadTarget{}, err
	}
	return UploadTarget{URL: url, Method: http.MethodPut, Key: key, Expires: exp}, nil
}

var errNoPresign = &httpError{status: http.StatusNotImplemented, msg: "this bucket cannot hand out upload URLs; POST the file to /api/uploads"}
