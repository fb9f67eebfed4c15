package awsconfig_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/fault"
	"github.com/sluicehq/sluice/pkg/s3blob"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// emulatorEnv points the SDK's default chain at the emulators, as the
// services' environment does.
func emulatorEnv(t *testing.T) {
	env := awstest.Shared(t)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", env.Endpoint(awstest.DynamoDB))
	t.Setenv("AWS_ENDPOINT_URL_S3", env.Endpoint(awstest.S3))
	t.Setenv("AWS_REGION", awstest.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
}

// TestObserverRecordsResources: every distinct (operation, resource) a
// client names is written once, a copy's source as well as its target.
func TestObserverRecordsResources(t *testing.T) {
	emulatorEnv(t)
	path := filepath.Join(t.TempDir(), "calls.jsonl")
	obs, err := fault.Observe(path, "tester")
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	cfg, err := awsconfig.LoadLogged(t.Context(), slog.New(slog.DiscardHandler), obs)
	if err != nil {
		t.Fatal(err)
	}
	st := s3blob.New(cfg, "observed", s3blob.WithPathStyle())
	if _, err := st.Client().CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String("observed")}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second time adds nothing to the file
		if _, err := st.Put(t.Context(), "input/a b.csv", strings.NewReader("x\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Copy(t.Context(), "input/a b.csv", "input_archive/b1/a b.csv"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(t.Context(), "input_archive/b1/a b.csv"); err != nil {
		t.Fatal(err)
	}
	// A conditional delete is heard with its If-Match (it needs
	// s3:GetObject as well as s3:DeleteObject).
	if err := st.DeleteIf(t.Context(), "input_archive/b1/a b.csv", "0123456789abcdef0123456789abcdef"); !errors.Is(err, sluice.ErrETagMismatch) {
		t.Fatalf("DeleteIf of another ETag: %v", err)
	}
	// A delivery sink's copy into a partner's bucket, through Partner:
	// the target is heard as the partner's, the source stays ours.
	partner := s3.NewFromConfig(awsconfig.Partner(cfg), func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := partner.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String("partner-bkt")}); err != nil {
		t.Fatal(err)
	}
	if _, err := partner.CopyObject(t.Context(), &s3.CopyObjectInput{Bucket: aws.String("partner-bkt"), Key: aws.String("out/a.csv"),
		CopySource: aws.String("observed/input/a%20b.csv")}); err != nil {
		t.Fatal(err)
	}
	db := dynamoledger.New(cfg, dynamoledger.DefaultTables("observe-"))
	if err := db.CreateTables(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Ledger().CreateBatch(t.Context(), sluice.Batch{ID: "b1", Key: "input/a b.csv"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Ledger().AddRejects(t.Context(), "b1", []sluice.RowError{{Line: 2, Rule: "r"}}); err != nil {
		t.Fatal(err)
	}

	got := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var c fault.Call
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if c.Process != "tester" {
			t.Fatalf("process %q", c.Process)
		}
		got[c.Service+" "+c.Operation+" "+c.Resource]++
	}
	for _, want := range []string{
		"S3 PutObject observed/input/a b.csv",
		"S3 CopyObject observed/input_archive/b1/a b.csv",
		"S3 CopyObject.CopySource observed/input/a b.csv",
		"S3 CopyObject " + awsconfig.PartnerPrefix + "partner-bkt/out/a.csv",
		"S3 HeadObject observed/input_archive/b1/a b.csv",
		"S3 DeleteObject observed/input_archive/b1/a b.csv",
		"S3 DeleteObject.IfMatch observed/input_archive/b1/a b.csv",
		"DynamoDB PutItem observe-batches",
		"DynamoDB BatchWriteItem observe-rejects",
	} {
		if got[want] != 1 {
			t.Errorf("%q recorded %d times, want once; all: %v", want, got[want], got)
		}
	}
}

// TestSDKLogsGoThroughSlog: the SDK's own lines are slog records, JSON
// in a JSON handler, and dropped below their level. An S3 endpoint that
// sends an object without a checksum makes the SDK say so, as the issue's
// 229 "SDK ... DEBUG Response has no supported checksum" lines did.
func TestSDKLogsGoThroughSlog(t *testing.T) {
	emulatorEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	}))
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.URL)
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level}))
		cfg, err := awsconfig.LoadLogged(t.Context(), log)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s3blob.New(cfg, "logged", s3blob.WithPathStyle()).Get(t.Context(), "k")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(r)
		r.Close()
		sdkLines := 0
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if line == "" {
				continue
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("not JSON: %q", line)
			}
			if rec["source"] == "aws-sdk" {
				sdkLines++
			}
		}
		if level == slog.LevelDebug && (sdkLines == 0 || !strings.Contains(buf.String(), "checksum")) {
			t.Fatalf("at debug, want the SDK's checksum line through slog; got:\n%s", buf.String())
		}
		if level == slog.LevelInfo && buf.Len() != 0 {
			t.Fatalf("at info, want nothing; got:\n%s", buf.String())
		}
	}
}
