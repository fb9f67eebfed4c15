package s3event

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// A notification as S3 sends it (from the S3 user guide), two records.
const notification = `{"Records":[
 {"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-26T01:02:03.456Z",
  "eventName":"ObjectCreated:Put","userIdentity":{"principalId":"AWS:X"},"requestParameters":{"sourceIPAddress":"127.0.0.1"},
  "responseElements":{"x-amz-request-id":"R","x-amz-id-2":"I"},
  "s3":{"s3SchemaVersion":"1.0","configurationId":"ingest","bucket":{"name":"sluice-data","ownerIdentity":{"principalId":"P"},"arn":"arn:aws:s3:::sluice-data"},
        "object":{"key":"input/orders+2026+%C3%A9t%C3%A9.csv","size":727337,"eTag":"0123456789abcdef0123456789abcdef","sequencer":"0055AED6DCD90281E5"}}},
 {"eventVersion":"2.1","eventSource":"aws:s3","eventTime":"2026-11-26T01:02:04Z","eventName":"ObjectCreated:CompleteMultipartUpload",
  "s3":{"bucket":{"name":"sluice-data"},"object":{"key":"input/big.csv","size":73000000,"eTag":"abc-5","sequencer":"0055AED6DCD90281E6"}}},
 {"eventVersion":"2.1","eventSource":"aws:s3","eventTime":"2026-11-26T01:02:05Z","eventName":"ObjectRemoved:Delete",
  "s3":{"bucket":{"name":"sluice-data"},"object":{"key":"input/gone.csv","sequencer":"0055AED6DCD90281E7"}}}
]}`

func TestParse(t *testing.T) {
	got, err := Parse([]byte(notification))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d objects, want 2 (the delete is not a creation)", len(got))
	}
	if got[0].Key != "input/orders 2026 été.csv" || got[0].Bucket != "sluice-data" || got[0].Size != 727337 ||
		got[0].ETag != "0123456789abcdef0123456789abcdef" || got[0].Sequence != "0055AED6DCD90281E5" || got[0].EventTime != "2026-11-26T01:02:03.456Z" {
		t.Fatalf("first record %+v", got[0])
	}
	if got[1].Key != "input/big.csv" || got[1].ETag != "abc-5" {
		t.Fatalf("second record %+v", got[1])
	}
}

func TestTestEventAndOtherShapes(t *testing.T) {
	got, err := Parse([]byte(`{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-26T00:00:00.000Z","Bucket":"sluice-data","RequestId":"R","HostId":"H"}`))
	if err != nil || len(got) != 0 {
		t.Fatalf("test event: %v %v", got, err)
	}
	eb := `{"version":"0","id":"x","detail-type":"Object Created","source":"aws.s3","time":"2026-11-26T01:00:00Z","region":"us-east-1",
	  "detail":{"version":"0","bucket":{"name":"sluice-data"},"object":{"key":"input/a b.csv","size":5,"etag":"e1","sequencer":"s1"},"reason":"PutObject"}}`
	got, err = Parse([]byte(eb))
	if err != nil || len(got) != 1 || got[0].Key != "input/a b.csv" || got[0].Sequence != "s1" {
		t.Fatalf("EventBridge: %+v %v", got, err)
	}
	own := sluice.Encode(sluice.ObjectCreated{Version: 1, Bucket: "b", Key: "input/x.csv", ETag: "e", Sequence: "1"})
	got, err = Parse(own)
	if err != nil || len(got) != 1 || got[0].Key != "input/x.csv" {
		t.Fatalf("own message: %+v %v", got, err)
	}
	for _, bad := range []string{`not json`, `{"v":7,"key":"input/x.csv"}`, `[1,2]`} {
		if _, err := Parse([]byte(bad)); !sluice.IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent error", bad, err)
		}
	}
}

func TestHandleCallsEachObjectOnce(t *testing.T) {
	permanent := sluice.Permanentf("not under input/")
	transient := errors.New("S3 timed out")
	tests := []struct {
		name      string
		body      string
		receives  int
		fail      map[string]error // by key
		wantKeys  []string
		wantErr   error // nil, permanent or transient
		redeliver bool
	}{
		{name: "two records", body: notification, receives: 1, wantKeys: []string{"input/orders 2026 été.csv", "input/big.csv"}},
		{name: "redelivered", body: notification, receives: 2, wantKeys: []string{"input/orders 2026 été.csv", "input/big.csv"}, redeliver: true},
		{name: "one permanent failure", body: notification, receives: 1, fail: map[string]error{"input/big.csv": permanent},
			wantKeys: []string{"input/orders 2026 été.csv", "input/big.csv"}, wantErr: permanent},
		{name: "a transient failure retries the message", body: notification, receives: 1,
			fail:     map[string]error{"input/big.csv": permanent, "input/orders 2026 été.csv": transient},
			wantKeys: []string{"input/orders 2026 été.csv", "input/big.csv"}, wantErr: transient},
		{name: "test event", body: `{"Event":"s3:TestEvent"}`, receives: 1},
		{name: "malformed", body: `{not json`, receives: 1, wantErr: permanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var keys []string
			err := Handle(t.Context(), sluice.Message{ID: "m", Body: []byte(tt.body), ReceiveCount: tt.receives}, slog.New(slog.DiscardHandler),
				func(_ context.Context, ev sluice.ObjectCreated, redelivered bool) error {
					if redelivered != tt.redeliver {
						t.Errorf("%s: redelivered %v, want %v", ev.Key, redelivered, tt.redeliver)
					}
					keys = append(keys, ev.Key)
					return tt.fail[ev.Key]
				})
			if fmt.Sprint(keys) != fmt.Sprint(tt.wantKeys) {
				t.Errorf("called for %q, want %q", keys, tt.wantKeys)
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.wantErr == permanent && !sluice.IsPermanent(err):
				t.Fatalf("error %v, want a permanent one", err)
			case tt.wantErr == transient && (err == nil || sluice.IsPermanent(err) || !errors.Is(err, transient)):
				t.Fatalf("error %v, want a transient one wrapping %v", err, transient)
			}
		})
	}
}
