package deliver_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/deliver"
)

// TestEventSchema: an event as the sinks marshal it matches the schema,
// and the schema catches what a consumer must not be sent.
func TestEventSchema(t *testing.T) {
	ev := event("b1")
	ev.Feed, ev.OutputLink, ev.ErrorsLink = "orders", "https://bucket.s3.amazonaws.com/x?X-Amz-Signature=1", "/data/bucket/b1/output/completed/errors.csv"
	body, _ := json.Marshal(ev)
	if err := deliver.ValidateEvent(body); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	// The keys stay inside: never in the JSON.
	ev.OutputKey = "b1/output/completed/output.csv"
	if b, _ := json.Marshal(ev); strings.Contains(string(b), "output/completed/output.csv") {
		t.Fatalf("the event carries our key: %s", b)
	}
	for name, mutate := range map[string]func(m map[string]any){
		"version 2":         func(m map[string]any) { m["version"] = 2 },
		"no batchId":        func(m map[string]any) { delete(m, "batchId") },
		"negative rows":     func(m map[string]any) { m["rowsOut"] = -1 },
		"short sha256":      func(m map[string]any) { m["outputSha256"] = "abc" },
		"failed state":      func(m map[string]any) { m["state"] = "failed" },
		"time not RFC 3339": func(m map[string]any) { m["finishedAt"] = "yesterday" },
	} {
		var m map[string]any
		json.Unmarshal(body, &m)
		mutate(m)
		bad, _ := json.Marshal(m)
		if deliver.ValidateEvent(bad) == nil {
			t.Errorf("%s: %s passed the schema", name, bad)
		}
	}
}

// TestSchemaIsTheDocumentedOne: docs/delivery-event.md links the schema
// file this package embeds, and shows the same required fields.
func TestSchemaIsTheDocumentedOne(t *testing.T) {
	doc, err := os.ReadFile("../../docs/delivery-event.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "pkg/deliver/event-v1.schema.json") {
		t.Fatal("docs/delivery-event.md does not name the schema file")
	}
	var s struct{ Required []string }
	json.Unmarshal(deliver.EventSchemaV1, &s)
	for _, f := range s.Required {
		if !strings.Contains(string(doc), "`"+f+"`") {
			t.Errorf("docs/delivery-event.md does not document the required field %s", f)
		}
	}
}
