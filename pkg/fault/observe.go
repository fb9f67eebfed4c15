package fault

import (
	"encoding/json"
	"os"
	"sync"
)

// Call is one kind of API call a process made: the SDK's service and
// operation names and the resource it named (bucket/key, a queue or table
// name, a sender address). Tests compare the calls a service made with the
// IAM policy the Terraform gives it (pkg/deploytest).
type Call struct {
	Process   string `json:"process"` // who made it: splitter, worker, ...
	Service   string `json:"service"` // S3, SQS, DynamoDB, SESv2
	Operation string `json:"op"`      // GetObject; CopyObject.CopySource for a copy's source
	Resource  string `json:"resource"`
}

// maxObserved bounds the distinct calls one process records; past it the
// recorder writes one call with Operation "truncated" and stops, so a
// test sees the gap instead of a silent cut.
const maxObserved = 20000

// Observer records every distinct Call once, appending it as a JSON line
// to a file as soon as it is first seen: a process killed with -9 has
// still written everything it did. Several processes may share the file
// (O_APPEND; each line is one write).
type Observer struct {
	process string
	mu      sync.Mutex
	seen    map[Call]bool
	f       *os.File
	full    bool
}

// Observe returns an Observer that appends to path on behalf of process.
func Observe(path, process string) (*Observer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &Observer{process: process, seen: map[Call]bool{}, f: f}, nil
}

// Close closes the file.
func (o *Observer) Close() error { return o.f.Close() }

// AWSCall implements CallCounter; the calls come through AWSResource.
func (o *Observer) AWSCall(service, operation string) {}

// AWSResource records one call on one resource.
func (o *Observer) AWSResource(service, operation, resource string) {
	c := Call{Process: o.process, Service: service, Operation: operation, Resource: resource}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen[c] || o.full {
		return
	}
	if len(o.seen) == maxObserved {
		o.full = true
		c = Call{Process: o.process, Operation: "truncated"}
	}
	o.seen[c] = true
	b, _ := json.Marshal(c)
	o.f.Write(append(b, '\n'))
}
