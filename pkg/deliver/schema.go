package deliver

import (
	"bytes"
	_ "embed"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// EventSchemaV1 is the JSON Schema (2020-12) of version 1 of the event,
// the one docs/delivery-event.md documents. A consumer may validate what
// it receives against it; the tests validate what every sink sends.
//
//go:embed event-v1.schema.json
var EventSchemaV1 []byte

var eventSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(EventSchemaV1))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat() // finishedAt must be an RFC 3339 date-time, not any string
	if err := c.AddResource("event-v1.schema.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("event-v1.schema.json")
})

// ValidateEvent checks an event's JSON against EventSchemaV1.
func ValidateEvent(body []byte) error {
	s, err := eventSchema()
	if err != nil {
		return fmt.Errorf("the event schema does not compile: %w", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("the event is not JSON: %w", err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("the event does not match its schema: %w", err)
	}
	return nil
}
