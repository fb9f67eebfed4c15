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
	"sync"

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
	writeRecorded(w, rec, body)
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
// CopyObject), checked against the ETag it shows for the object, as
// preconditionFailed does for s3rver, and S3's ETag of a multipart upload
// wherever the object shows one (gofakesMultipart). The check and the
// request are two steps here, where S3 makes them one: enough for a test
// that changes the object before the request, not for one that races it.
func gofakesConditions(next http.Handler, db gofakes3.Backend) http.Handler {
	mp := &gofakesMultipart{db: db, tags: map[string][2]string{}}
	etagOf := func(bucket, key string) (string, bool) {
		o, err := db.HeadObject(bucket, key)
		if err != nil || o == nil {
			return "", false
		}
		return mp.shown(bucket, key, hex.EncodeToString(o.Hash)), true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucket, op := s3Operation(r)
		if preconditionFailed(w, r, etagOf, bucket, op) {
			return
		}
		mp.serve(w, r, next, bucket, op)
	})
}

// gofakesMultipart: gofakes3 answers CompleteMultipartUpload with S3's
// multipart ETag but keeps the object under the MD5 of its bytes, which
// HEAD, GET and listings then show: a client comparing the upload's ETag
// with a later look would see another object. This remembers the multipart
// ETag of each key (with the MD5 it stands for, so a later write of other
// bytes is not given it) and shows it instead, as S3 does. A copy of such
// an object is a plain one, with the MD5 of its bytes, as on S3.
type gofakesMultipart struct {
	db   gofakes3.Backend
	mu   sync.Mutex
	tags map[string][2]string // bucket/key → {MD5 of the bytes, multipart ETag}
}

// shown is the ETag S3 would show for key, whose bytes have MD5 md5.
func (g *gofakesMultipart) shown(bucket, key, md5 string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t, ok := g.tags[bucket+"/"+key]; ok && t[0] == md5 {
		return t[1]
	}
	return md5
}

func (g *gofakesMultipart) set(bucket, key string, t [2]string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t == ([2]string{}) {
		delete(g.tags, bucket+"/"+key)
		return
	}
	g.tags[bucket+"/"+key] = t
}

var (
	contentsElem = regexp.MustCompile(`(?s)<Contents>.*?</Contents>`)
	keyElem      = regexp.MustCompile(`<Key>([^<]*)</Key>`)
)

// serve passes r to next and gives the answer S3's multipart ETags.
func (g *gofakesMultipart) serve(w http.ResponseWriter, r *http.Request, next http.Handler, bucket, op string) {
	key := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/"), bucket+"/")
	switch op {
	case "CompleteMultipartUpload", "PutObject", "CopyObject", "DeleteObject", "ListObjectsV2", "ListObjects":
	case "GetObject", "HeadObject": // streamed: only the header changes
		ew := &etagWriter{ResponseWriter: w, fix: func(md5 string) string { return g.shown(bucket, key, md5) }}
		next.ServeHTTP(ew, r)
		if !ew.done { // a HEAD answered by headers alone
			ew.WriteHeader(http.StatusOK)
		}
		return
	default:
		next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	ok := rec.Code < 300
	switch {
	case op == "CompleteMultipartUpload" && ok:
		m := etagElem.Find(body)
		o, err := g.db.HeadObject(bucket, key)
		if m != nil && err == nil {
			tag := strings.Trim(strings.NewReplacer("<ETag>", "", "</ETag>", "", "&#34;", "", "&quot;", "").Replace(string(m)), `"`)
			g.set(bucket, key, [2]string{hex.EncodeToString(o.Hash), tag})
		}
	case (op == "PutObject" || op == "CopyObject" || op == "DeleteObject") && ok:
		g.set(bucket, key, [2]string{}) // another object now, or none
	case ok: // a listing
		body = contentsElem.ReplaceAllFunc(body, func(c []byte) []byte {
			k, t := keyElem.FindSubmatch(c), etagElem.Find(c)
			if k == nil || t == nil {
				return c
			}
			var name string
			if xml.Unmarshal(append(append([]byte("<k>"), k[1]...), "</k>"...), &name) != nil {
				return c
			}
			md5 := strings.Trim(strings.NewReplacer("<ETag>", "", "</ETag>", "", "&#34;", "", "&quot;", "").Replace(string(t)), `"`)
			return bytes.Replace(c, t, []byte("<ETag>&#34;"+g.shown(bucket, name, md5)+"&#34;</ETag>"), 1)
		})
	}
	writeRecorded(w, rec, body)
}

// etagWriter passes a response through, its ETag header changed by fix.
type etagWriter struct {
	http.ResponseWriter
	fix  func(md5 string) string
	done bool
}

func (e *etagWriter) WriteHeader(code int) {
	if !e.done {
		e.done = true
		if t := strings.Trim(e.Header().Get("ETag"), `"`); t != "" {
			e.Header().Set("ETag", `"`+e.fix(t)+`"`)
		}
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *etagWriter) Write(b []byte) (int, error) {
	if !e.done {
		e.WriteHeader(http.StatusOK)
	}
	return e.ResponseWriter.Write(b)
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

// writeRecorded sends rec's status and headers with body in place of the
// body rec recorded (its Content-Length set to body's).
func writeRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder, body []byte) {
	for k, vs := range rec.Header() {
		if k != "Content-Length" {
			w.Header()[k] = vs
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	w.Write(body)
}
