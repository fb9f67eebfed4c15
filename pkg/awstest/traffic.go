package awstest

import (
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Traffic counts the S3 requests that reach the emulators and their
// payload bytes, per bucket and operation, as they cross the wire: what a
// benchmark reports as S3 PUT bytes, and what a test checks when it must
// know that bytes did not move. Requests are named by method, path and
// query as S3 routes them; path-style addressing is assumed (every client
// here uses it).
type Traffic struct {
	mu sync.Mutex
	m  map[string]map[string]*OpTraffic
}

// OpTraffic is what one S3 operation moved: In is the request payloads
// (for aws-chunked bodies the decoded length, without the chunk framing),
// Out the response bodies.
type OpTraffic struct {
	Calls   int64
	In, Out int64
}

// Ops is traffic by operation name (PutObject, UploadPartCopy, …).
type Ops map[string]OpTraffic

// Names returns the operations in alphabetical order.
func (o Ops) Names() []string {
	out := make([]string, 0, len(o))
	for k := range o {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Sub is o less an earlier snapshot.
func (o Ops) Sub(before Ops) Ops {
	out := Ops{}
	for k, v := range o {
		b := before[k]
		if d := (OpTraffic{v.Calls - b.Calls, v.In - b.In, v.Out - b.Out}); d != (OpTraffic{}) {
			out[k] = d
		}
	}
	return out
}

// Bucket returns a snapshot of the traffic of one bucket.
func (t *Traffic) Bucket(bucket string) Ops {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := Ops{}
	for op, v := range t.m[bucket] {
		out[op] = *v
	}
	return out
}

func (t *Traffic) add(bucket, op string, in, out int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]map[string]*OpTraffic{}
	}
	b := t.m[bucket]
	if b == nil {
		b = map[string]*OpTraffic{}
		t.m[bucket] = b
	}
	v := b[op]
	if v == nil {
		v = &OpTraffic{}
		b[op] = v
	}
	v.Calls++
	v.In += in
	v.Out += out
}

// Count wraps an S3 handler so that every request is counted once it has
// been answered.
func (t *Traffic) Count(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucket, op := s3Operation(r)
		body := &countReader{r: r.Body}
		r.Body = body
		cw := &countWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		in := body.n
		if d, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64); err == nil {
			in = d
		}
		t.add(bucket, op, in, cw.n)
	})
}

// s3Operation names the S3 API operation of a path-style request.
func s3Operation(r *http.Request) (bucket, op string) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	q := r.URL.Query()
	copying := r.Header.Get("X-Amz-Copy-Source") != ""
	has := func(k string) bool { _, ok := q[k]; return ok }
	switch r.Method {
	case http.MethodPut:
		switch {
		case key == "":
			return bucket, "CreateBucket"
		case has("uploadId") && copying:
			return bucket, "UploadPartCopy"
		case has("uploadId"):
			return bucket, "UploadPart"
		case copying:
			return bucket, "CopyObject"
		}
		return bucket, "PutObject"
	case http.MethodPost:
		switch {
		case has("uploads"):
			return bucket, "CreateMultipartUpload"
		case has("uploadId"):
			return bucket, "CompleteMultipartUpload"
		case has("delete"):
			return bucket, "DeleteObjects"
		}
		return bucket, "Post"
	case http.MethodGet:
		switch {
		case key == "" && has("uploads"):
			return bucket, "ListMultipartUploads"
		case key == "" && q.Get("list-type") == "2":
			return bucket, "ListObjectsV2"
		case key == "":
			return bucket, "ListObjects"
		case has("uploadId"):
			return bucket, "ListParts"
		}
		return bucket, "GetObject"
	case http.MethodHead:
		if key == "" {
			return bucket, "HeadBucket"
		}
		return bucket, "HeadObject"
	case http.MethodDelete:
		switch {
		case has("uploadId"):
			return bucket, "AbortMultipartUpload"
		case key == "":
			return bucket, "DeleteBucket"
		}
		return bucket, "DeleteObject"
	}
	return bucket, r.Method
}

type countReader struct {
	r io.ReadCloser
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countReader) Close() error { return c.r.Close() }

type countWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// Flush keeps streaming responses streaming through the counter.
func (c *countWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
