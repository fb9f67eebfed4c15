package awstest

import (
	"net/http/httptest"
	"testing"
)

// The benchmark's table is only as right as these names.
func TestS3Operation(t *testing.T) {
	for _, c := range []struct {
		method, target, copySource, want string
	}{
		{"PUT", "/b", "", "CreateBucket"},
		{"PUT", "/b/k/x.csv", "", "PutObject"},
		{"PUT", "/b/k?partNumber=2&uploadId=u", "", "UploadPart"},
		{"PUT", "/b/k?partNumber=2&uploadId=u", "/b/src", "UploadPartCopy"},
		{"PUT", "/b/k", "/b/src", "CopyObject"},
		{"POST", "/b/k?uploads", "", "CreateMultipartUpload"},
		{"POST", "/b/k?uploadId=u", "", "CompleteMultipartUpload"},
		{"POST", "/b?delete", "", "DeleteObjects"},
		{"GET", "/b?list-type=2&prefix=p", "", "ListObjectsV2"},
		{"GET", "/b/k", "", "GetObject"},
		{"GET", "/b/k?uploadId=u", "", "ListParts"},
		{"HEAD", "/b/k", "", "HeadObject"},
		{"HEAD", "/b", "", "HeadBucket"},
		{"DELETE", "/b/k", "", "DeleteObject"},
		{"DELETE", "/b/k?uploadId=u", "", "AbortMultipartUpload"},
	} {
		r := httptest.NewRequest(c.method, c.target, nil)
		if c.copySource != "" {
			r.Header.Set("X-Amz-Copy-Source", c.copySource)
		}
		if b, op := s3Operation(r); b != "b" || op != c.want {
			t.Errorf("%s %s: %s %s, want b %s", c.method, c.target, b, op, c.want)
		}
	}
}
