// Package s3event turns the messages that announce a new object into
// sluice.ObjectCreated values: S3 event notifications exactly as S3 sends
// them to SQS, the EventBridge "Object Created" shape, and Sluice's own
// message (what `sluice run` and the tests send).
package s3event

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// s3Notification is the S3 event message format, version 2.x.
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
type s3Notification struct {
	Records []struct {
		EventVersion string `json:"eventVersion"`
		EventSource  string `json:"eventSource"`
		EventTime    string `json:"eventTime"`
		EventName    string `json:"eventName"`
		S3           struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key       string `json:"key"`
				Size      int64  `json:"size"`
				ETag      string `json:"eTag"`
				VersionID string `json:"versionId"`
				Sequencer string `json:"sequencer"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
	// The test event S3 sends when a notification is configured.
	Event string `json:"Event"`
}

// eventBridge is the EventBridge "Object Created" event.
type eventBridge struct {
	DetailType string `json:"detail-type"`
	Source     string `json:"source"`
	Time       string `json:"time"`
	Detail     struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key       string `json:"key"`
			Size      int64  `json:"size"`
			ETag      string `json:"etag"`
			VersionID string `json:"version-id"`
			Sequencer string `json:"sequencer"`
		} `json:"object"`
	} `json:"detail"`
}

// Parse returns the objects a message announces: none for S3's test event
// or for events that are not object creations, several when S3 batched
// records. A message in no known shape is a permanent error.
func Parse(body []byte) ([]sluice.ObjectCreated, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, sluice.PermanentReason(sluice.ReasonMalformed, fmt.Errorf("malformed message: %v", err))
	}
	switch {
	case probe["Records"] != nil || probe["Event"] != nil:
		var n s3Notification
		if err := json.Unmarshal(body, &n); err != nil {
			return nil, sluice.PermanentReason(sluice.ReasonMalformed, fmt.Errorf("malformed S3 event: %v", err))
		}
		if n.Event == "s3:TestEvent" {
			return nil, nil
		}
		var out []sluice.ObjectCreated
		for _, r := range n.Records {
			if !strings.HasPrefix(r.EventName, "ObjectCreated:") {
				continue
			}
			key, err := decodeKey(r.S3.Object.Key)
			if err != nil {
				return nil, sluice.PermanentReason(sluice.ReasonInvalidKey, fmt.Errorf("S3 event with an undecodable key %q: %v", r.S3.Object.Key, err))
			}
			seq := r.S3.Object.Sequencer
			if seq == "" {
				seq = r.S3.Object.VersionID
			}
			out = append(out, sluice.ObjectCreated{
				Version: sluice.MessageVersion, Bucket: r.S3.Bucket.Name, Key: key, Size: r.S3.Object.Size,
				ETag: strings.Trim(r.S3.Object.ETag, `"`), Sequence: seq, EventTime: r.EventTime,
			})
		}
		return out, nil
	case probe["detail-type"] != nil:
		var e eventBridge
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, sluice.PermanentReason(sluice.ReasonMalformed, fmt.Errorf("malformed EventBridge event: %v", err))
		}
		if e.DetailType != "Object Created" {
			return nil, nil
		}
		seq := e.Detail.Object.Sequencer
		if seq == "" {
			seq = e.Detail.Object.VersionID
		}
		// EventBridge keys are not URL-encoded.
		return []sluice.ObjectCreated{{
			Version: sluice.MessageVersion, Bucket: e.Detail.Bucket.Name, Key: e.Detail.Object.Key, Size: e.Detail.Object.Size,
			ETag: strings.Trim(e.Detail.Object.ETag, `"`), Sequence: seq, EventTime: e.Time,
		}}, nil
	default:
		var oc sluice.ObjectCreated
		if err := sluice.Decode(body, &oc); err != nil {
			return nil, err
		}
		return []sluice.ObjectCreated{oc}, nil
	}
}

// decodeKey undoes S3's encoding of keys in notifications: URL encoding
// with '+' for spaces.
func decodeKey(k string) (string, error) { return url.QueryUnescape(k) }
