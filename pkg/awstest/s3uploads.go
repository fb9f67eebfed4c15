package awstest

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// s3rver leaves out three things S3 does, which the compose relies on and
// its tests must be able to fail on; s3Rules adds them from what s3rver
// keeps under its directory:
//   - ListMultipartUploads (s3rver: 501) and AbortMultipartUpload (405), so
//     a test can see that an aborted compose leaves no upload open;
//   - If-Match on GetObject, HeadObject and DeleteObject, and
//     x-amz-copy-source-if-match on CopyObject and UploadPartCopy (s3rver
//     ignores them all): 412 PreconditionFailed when the object's ETag is
//     another, so a source rewritten during a compose fails it, and a
//     conditional read, copy or delete of a replaced object does nothing,
//     as on S3 (preconditionFailed; gofakes3 gets the same, s3etags.go);
//   - S3's ETags where s3rver's differ (s3etags.go): a multipart upload's
//     is the MD5 of its parts' MD5s and "-<parts>", and a copy's is the MD5
//     of its bytes, so a copy of a multipart upload has another ETag than
//     its source, as on S3.

// uploadsDir is where s3rver keeps a bucket's multipart uploads.
func uploadsDir(dir, bucket string) string { return filepath.Join(dir, bucket, "._S3rver_uploads") }

// objectPath is s3rver's file for a key's resource ("object", "object.md5").
func objectPath(dir, bucket, key, resource string) string {
	d, name := filepath.Split(key)
	return filepath.Join(dir, bucket, d, name+"._S3rver_"+resource)
}

// objectETag is the ETag s3rver answers for a key (the MD5 of its bytes),
// or ok false when the key does not exist.
func objectETag(dir, bucket, key string) (string, bool) {
	if sum, err := os.ReadFile(objectPath(dir, bucket, key, "object.md5")); err == nil {
		return strings.TrimSpace(string(sum)), true
	}
	f, err := os.Open(objectPath(dir, bucket, key, "object"))
	if err != nil {
		return "", false
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", false
	}
	return hex.EncodeToString(h.Sum(nil)), true
}

// preconditionFailed answers 412 when r's If-Match (GetObject, HeadObject,
// DeleteObject) or x-amz-copy-source-if-match (CopyObject, UploadPartCopy)
// names another ETag than the object's, as etagOf reports it. It reports
// whether it answered. If-Match "*" matches any object. A conditional
// delete of a missing key is answered 404 NoSuchKey, as S3 answers it
// (the emulators answer 204, as for a plain delete).
func preconditionFailed(w http.ResponseWriter, r *http.Request, etagOf func(bucket, key string) (string, bool), bucket, op string) bool {
	var want, srcBucket, key string
	switch op {
	case "GetObject", "HeadObject", "DeleteObject":
		want, srcBucket = r.Header.Get("If-Match"), bucket
		key = strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/"), bucket+"/")
	case "UploadPartCopy", "CopyObject":
		want = r.Header.Get("X-Amz-Copy-Source-If-Match")
		src, _, _ := strings.Cut(r.Header.Get("X-Amz-Copy-Source"), "?")
		src, err := url.PathUnescape(strings.TrimPrefix(src, "/"))
		if err != nil {
			return false
		}
		srcBucket, key, _ = strings.Cut(src, "/")
	default:
		return false
	}
	if want == "" {
		return false
	}
	got, ok := etagOf(srcBucket, key)
	if !ok && op == "DeleteObject" {
		s3ErrorStatus(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return true
	}
	if !ok || want == "*" || strings.Trim(want, `"`) == got {
		return false // a missing key is the emulator's to answer (NoSuchKey)
	}
	if op == "HeadObject" { // a HEAD answer has no body
		w.WriteHeader(http.StatusPreconditionFailed)
		return true
	}
	s3ErrorStatus(w, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
	return true
}

// s3rverETag is objectETag of the s3rver that stores under dir.
func s3rverETag(dir string) func(bucket, key string) (string, bool) {
	return func(bucket, key string) (string, bool) { return objectETag(dir, bucket, key) }
}

// listUploads answers ListMultipartUploads from s3rver's upload directories
// (prefix honoured; one page, which is all a test makes).
func listUploads(w http.ResponseWriter, r *http.Request, dir, bucket string) {
	type upload struct {
		Key      string
		UploadId string
	}
	var ups []upload
	entries, err := os.ReadDir(uploadsDir(dir, bucket))
	if err != nil && !os.IsNotExist(err) {
		s3ErrorStatus(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	prefix := r.URL.Query().Get("prefix")
	for _, e := range entries {
		key, err := os.ReadFile(filepath.Join(uploadsDir(dir, bucket), e.Name(), "key"))
		if err != nil || !strings.HasPrefix(string(key), prefix) {
			continue
		}
		ups = append(ups, upload{Key: string(key), UploadId: e.Name()})
	}
	sort.Slice(ups, func(i, j int) bool { return ups[i].Key < ups[j].Key })
	out, err := xml.Marshal(struct {
		XMLName     xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListMultipartUploadsResult"`
		Bucket      string
		Prefix      string
		IsTruncated bool
		Upload      []upload
	}{Bucket: bucket, Prefix: prefix, Upload: ups})
	if err != nil {
		s3ErrorStatus(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Write([]byte(xml.Header))
	w.Write(out)
}

// abortUpload answers AbortMultipartUpload by removing s3rver's upload
// directory: 204, or 404 NoSuchUpload as S3 answers an unknown one.
func abortUpload(w http.ResponseWriter, r *http.Request, dir, bucket string) {
	id := r.URL.Query().Get("uploadId")
	up := filepath.Join(uploadsDir(dir, bucket), filepath.Base(id))
	if _, err := os.Stat(up); id == "" || err != nil {
		s3ErrorStatus(w, http.StatusNotFound, "NoSuchUpload", "The specified upload does not exist.")
		return
	}
	if err := os.RemoveAll(up); err != nil {
		s3ErrorStatus(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func s3ErrorStatus(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n<Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
}
