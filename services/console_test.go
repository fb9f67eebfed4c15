package services_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/console"
	"github.com/sluicehq/sluice/pkg/s3blob"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// TestConsoleOverAWS serves the console over the DynamoDB ledger and the S3
// bucket while the four services run: an upload through the API lands in
// input/, its batch is followed through the API, the output downloads; and
// a presigned PUT URL takes a file straight to the bucket.
func TestConsoleOverAWS(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	s := newStack(t, 5000)
	loadReference(t, s, fin)
	s.startAll()
	cfg, err := awsconfig.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	blobs := s3blob.New(cfg, s.bucket, s3blob.WithPathStyle())
	srv := httptest.NewServer(console.New(console.Deps{
		Ledger: s.ledger, Blobs: blobs,
		Uploader: &console.BucketUploader{Blobs: blobs, Presign: blobs.PresignPut},
	}))
	defer srv.Close()

	// Upload through the API (multipart form, as the page's form sends it).
	body := &bytes.Buffer{}
	mw := multipart.NewWriter(body)
	fw, _ := mw.CreateFormFile("file", "console.csv")
	data, _ := os.ReadFile(orders)
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/api/uploads", body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var up console.UploadResult
	json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || up.Key != "input/console.csv" {
		t.Fatalf("upload: %s %+v", resp.Status, up)
	}
	// The emulator has no bucket notifications: send what S3 would.
	info, _ := blobs.Stat(t.Context(), up.Key)
	s.send("ingest", []byte(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventTime":"`+time.Now().UTC().Format(time.RFC3339)+
		`","eventName":"ObjectCreated:Post","s3":{"bucket":{"name":"`+s.bucket+`"},"object":{"key":"input/console.csv","size":`+itoa(info.Size)+`,"eTag":"`+info.ETag+`","sequencer":"0A"}}}]}`))
	b := s.waitBatch("input/console.csv", 2*time.Minute)

	get := func(path string) []byte {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s %s", path, resp.Status, out)
		}
		return out
	}
	var detail map[string]any
	json.Unmarshal(get("/api/batches/"+b.ID), &detail)
	if detail["state"] != "completed" || detail["rowsOut"] != float64(10000) {
		t.Fatalf("batch detail %v", detail)
	}
	if out := get("/api/batches/" + b.ID + "/output"); !bytes.Equal(out, s.get(b.OutputKey)) {
		t.Fatal("the console's output download differs from the object")
	}
	if page := get("/batches/" + b.ID); !strings.Contains(string(page), "completed") || strings.Contains(string(page), "X-Amz-Signature") {
		t.Fatal("batch page: no state, or a presigned signature in the HTML")
	}

	// The CLI reads the same deployment.
	cli := func(args ...string) string {
		cmd := exec.Command(bins["sluice"], args...)
		cmd.Env = append(os.Environ(), s.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sluice %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := cli("status", "--aws", b.ID); !strings.Contains(out, "completed") || !strings.Contains(out, "10000 in, 10000 out") {
		t.Fatalf("sluice status --aws:\n%s", out)
	}
	if out := cli("dlq", "list", "ingest", "--aws"); !strings.Contains(out, "ingest-dlq is empty") {
		t.Fatalf("sluice dlq list --aws:\n%s", out)
	}

	// A presigned PUT straight to the bucket.
	resp, err = http.Post(srv.URL+"/api/uploads/url?name=direct.csv", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var target console.UploadTarget
	json.NewDecoder(resp.Body).Decode(&target)
	resp.Body.Close()
	if resp.StatusCode != 200 || target.Method != "PUT" || target.Key != "input/direct.csv" {
		t.Fatalf("upload URL: %s %+v", resp.Status, target)
	}
	put, _ := http.NewRequest("PUT", target.URL, bytes.NewReader([]byte("uuid\n1\n")))
	if resp, err = http.DefaultClient.Do(put); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT to the presigned URL: %v %v", err, resp)
	}
	resp.Body.Close()
	if _, err := blobs.Stat(t.Context(), "input/direct.csv"); err != nil {
		t.Fatalf("the presigned PUT did not land: %v", err)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
