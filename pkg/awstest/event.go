package awstest

import (
	"encoding/json"
	"net/url"
	"strings"
	"time"
)

// ObjectCreated is the message S3 sends to the ingest queue when an object
// is created: an S3 event notification with one record, its key
// URL-encoded as S3 encodes it. The emulators send no bucket
// notifications, so the chaos driver, awsbench and the end-to-end tests
// send this after each upload, as S3 would.
func ObjectCreated(bucket, key string, size int64, etag, sequencer string) []byte {
	ev := map[string]any{"Records": []any{map[string]any{
		"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": Region, "eventTime": time.Now().UTC().Format(time.RFC3339Nano),
		"eventName": "ObjectCreated:Put",
		"s3": map[string]any{"s3SchemaVersion": "1.0", "configurationId": "sluice-ingest",
			"bucket": map[string]any{"name": bucket, "arn": "arn:aws:s3:::" + bucket},
			"object": map[string]any{"key": strings.ReplaceAll(url.QueryEscape(key), "%2F", "/"), "size": size, "eTag": etag, "sequencer": sequencer}},
	}}}
	body, _ := json.Marshal(ev)
	return body
}
