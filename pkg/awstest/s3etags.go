package awstest

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/johannesboyne/gofakes3"
)

// S3 gives an object the ETag of how it was made: a single PutObject or
// CopyObject the MD5 of its bytes, a multipart upload the MD5 of its
// parts' binary MD5s followed by "-<number of parts>". s3rver gives every
// object the MD5 of its bytes and a copy its source's ETag, so a copy of a
// multipart upload would keep its ETag there, and code that takes a copy
// for its source by the ETag alone would pass on s3rver and fail on S3.
// The S3Copy endpoint gives the ETags S3 gives.

// multipartETag is S3's ETag of a multipart upload completed with body,
// whose parts s3rver stored under uploads as <n> and <n>.md5 ("" when a
// part's MD5 cannot be read: checkParts refuses such an upload).
func multipartETag(uploads string, body []byte) string {
	var req struct {
		Parts []struct{ PartNumber int } `xml:"Part"`
	}
	if err := xml.Unmarshal(body, &req); err != nil || len(req.Parts) == 0 {
		return ""
	}
	h := md5.New()
	for _, p := range req.Parts {
		sum, err := os.ReadFile(filepath.Join(uploads, strconv.Itoa(p.PartNumber)+".md5"))
		if err != nil {
			return ""
		}
		bin, err := hex.DecodeString(strings.TrimSpace(string(sum)))
		if err != nil {
			return ""
		}
		h.Write(bin)
	}
	return hex.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(req.Parts))
}

var etagElem = regexp.MustCompile(`<ETag>[^<]*</ETag>`)

// withS3ETag forwards a CompleteMultipartUpload or a CopyObject to next
// and, when it succeeds, gives the object S3's ETag: etag, or for a copy
// ("" here) the MD5 of its bytes. s3rver reads an object's ETag from its
// .md5 file, so that file is rewritten, before the client hears of the
// object, and the ETag in the answer with it.
func withS3ETag(w http.ResponseWriter, r *http.Request, next http.Handler, dir, bucket, etag string) {
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if rec.Code == http.StatusOK && etagElem.Match(body) {
		key := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/"), bucket+"/")
		if etag == "" {
			etag = md5OfFile(objectPath(dir, bucket, key, "object"))
		}
		if etag != "" && os.WriteFile(objectPath(dir, bucket, key, "object.md5"), []byte(etag), 0o644) == nil {
			body = etagElem.ReplaceAll(body, []byte("<ETag>&quot;"+etag+"&quot;</ETag>"))
		}
	}
	for k, vs := range rec.Header() {
		if k != "Content-Length" {
			w.Header()[k] = vs
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	w.Write(body)
}

// md5OfFile is the hex MD5 of a file's bytes, "" when it cannot be read.
func md5OfFile(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// gofakesConditions adds to gofakes3 the conditions it ignores (If-Match
// on GetObject, HeadObject and DeleteObject, x-amz-copy-source-if-match on
// CopyObject), checked against the ETag its backend db keeps, as
// preconditionFailed does for s3rver. The check and the request are two
// steps here, where S3 makes them one: enough for a test that changes the
// object before the request, not for one that races it.
func gofakesConditions(next http.Handler, db gofakes3.Backend) http.Handler {
	etagOf := func(bucket, key string) (string, bool) {
		o, err := db.HeadObject(bucket, key)
		if err != nil || o == nil {
			return "", false
		}
		return hex.EncodeToString(o.Hash), true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucket, op := s3Operation(r)
		if preconditionFailed(w, r, etagOf, bucket, op) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readBody reads r's body and puts it back for the next reader.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}
