package awstest

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MinPartSize is S3's smallest part of a multipart upload, except the last:
// the S3Copy endpoint refuses to complete an upload that breaks it, as S3
// does, because s3rver alone would not.
const MinPartSize = 5 << 20

// s3rverDirEnv passes the S3Copy emulator its storage directory.
const s3rverDirEnv = "AWSTEST_S3RVER_DIR"

// s3rverLauncher starts @20minutes/s3rver, the maintained fork of s3rver
// that implements UploadPartCopy with x-amz-copy-source-range (gofakes3 does
// not). It checks SigV4 signatures, so the tests' static "test" key is
// registered with it; path-style only, as every client here is.
const s3rverLauncher = `const S3rver = require("@20minutes/s3rver");
	require("@20minutes/s3rver/lib/models/account").DUMMY_ACCOUNT.createKeyPair("test", "test");
	new S3rver({port: 0, address: "127.0.0.1", silent: true, vhostBuckets: false,
		directory: process.env.` + s3rverDirEnv + `}).run().then(a => ready(a.port), fail);`

// s3Rules sits between every client and s3rver and adds what S3 enforces
// and s3rver does not, so that the code under test cannot pass here with a
// multipart upload S3 would refuse: CompleteMultipartUpload fails with
// EntityTooSmall when a part other than the last is under MinPartSize, with
// InvalidPart when a listed part was not uploaded or its ETag differs, and
// with InvalidPartOrder when the parts are not in ascending order. It reads
// the parts' sizes and MD5s where s3rver keeps them, under dir. It also
// answers what s3rver lacks (s3uploads.go): listing and aborting uploads,
// and the If-Match conditions of reads, copies and deletes; and it gives
// objects the ETags S3 gives (s3etags.go).
func s3Rules(emulator, dir string, traffic *Traffic) (*httptest.Server, error) {
	target, err := url.Parse(emulator)
	if err != nil {
		return nil, err
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if r.Context().Err() != nil {
			return
		}
		http.Error(w, "awstest: S3 emulator: "+err.Error(), http.StatusBadGateway)
	}
	check := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucket, op := s3Operation(r)
		switch op {
		case "ListMultipartUploads":
			listUploads(w, r, dir, bucket)
			return
		case "AbortMultipartUpload":
			abortUpload(w, r, dir, bucket)
			return
		}
		if preconditionFailed(w, r, s3rverETag(dir), bucket, op) {
			return
		}
		switch op {
		case "CompleteMultipartUpload":
			body, err := readBody(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			uploads := filepath.Join(dir, bucket, "._S3rver_uploads", r.URL.Query().Get("uploadId"))
			if code, msg := checkParts(uploads, body); code != "" {
				s3Error(w, code, msg)
				return
			}
			withS3ETag(w, r, proxy, dir, bucket, multipartETag(uploads, body))
		case "CopyObject":
			withS3ETag(w, r, proxy, dir, bucket, "")
		default:
			proxy.ServeHTTP(w, r)
		}
	})
	return httptest.NewServer(traffic.Count(check)), nil
}

// checkParts applies S3's rules to a CompleteMultipartUpload body whose
// parts s3rver stored under uploads as <n> and <n>.md5. It returns an S3
// error code and message, or "" when S3 would accept the list.
func checkParts(uploads string, body []byte) (code, msg string) {
	var req struct {
		Parts []struct {
			PartNumber int
			ETag       string
		} `xml:"Part"`
	}
	if err := xml.Unmarshal(body, &req); err != nil || len(req.Parts) == 0 {
		return "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema."
	}
	for i, p := range req.Parts {
		if i > 0 && p.PartNumber <= req.Parts[i-1].PartNumber {
			return "InvalidPartOrder", "The list of parts was not in ascending order."
		}
		name := filepath.Join(uploads, strconv.Itoa(p.PartNumber))
		st, err := os.Stat(name)
		sum, err2 := os.ReadFile(name + ".md5")
		if err != nil || err2 != nil || strings.Trim(p.ETag, `"`) != strings.TrimSpace(string(sum)) {
			return "InvalidPart", fmt.Sprintf("Part %d was not uploaded, or its ETag does not match.", p.PartNumber)
		}
		if i < len(req.Parts)-1 && st.Size() < MinPartSize {
			return "EntityTooSmall", fmt.Sprintf("Part %d has %d bytes: every part but the last must have at least %d.", p.PartNumber, st.Size(), MinPartSize)
		}
	}
	return "", ""
}

func s3Error(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n<Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
}
