package awsconfig

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
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

// ResourceObserver, when a CallCounter also is one, hears the resources
// each call names, before it is sent (so presigned requests count too).
type ResourceObserver interface {
	AWSResource(service, operation, resource string)
}

// observeResources reads the typed input at the initialize step. It looks
// at field names rather than types, so one function covers every client.
func observeResources(counters []CallCounter) func(*middleware.Stack) error {
	var obs []ResourceObserver
	for _, c := range counters {
		if o, ok := c.(ResourceObserver); ok {
			obs = append(obs, o)
		}
	}
	return func(st *middleware.Stack) error {
		if len(obs) == 0 {
			return nil
		}
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("SluiceObserveResources",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				svc, op := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
				for _, r := range resources(in.Parameters) {
					for _, o := range obs {
						o.AWSResource(svc, op+r.suffix, r.name)
					}
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	}
}

type named struct{ suffix, name string }

// resources names what an SDK input addresses.
func resources(params any) []named {
	v := reflect.Indirect(reflect.ValueOf(params))
	if v.Kind() != reflect.Struct {
		return nil
	}
	s := func(field string) string {
		f := v.FieldByName(field)
		if f.Kind() == reflect.Pointer && !f.IsNil() && f.Elem().Kind() == reflect.String {
			return f.Elem().String()
		}
		return ""
	}
	var out []named
	switch {
	case s("Bucket") != "":
		out = append(out, named{"", strings.TrimSuffix(s("Bucket")+"/"+s("Key"), "/")})
		if src := s("CopySource"); src != "" {
			if u, err := url.PathUnescape(src); err == nil {
				src = u
			}
			out = append(out, named{".CopySource", strings.TrimPrefix(src, "/")})
		}
	case s("QueueUrl") != "":
		u := s("QueueUrl")
		out = append(out, named{"", u[strings.LastIndexByte(u, '/')+1:]})
	case s("QueueName") != "":
		out = append(out, named{"", s("QueueName")})
	case s("TableName") != "" && s("IndexName") != "":
		out = append(out, named{"", s("TableName") + "/index/" + s("IndexName")})
	case s("TableName") != "":
		out = append(out, named{"", s("TableName")})
	case s("FromEmailAddress") != "":
		out = append(out, named{"", s("FromEmailAddress")})
	}
	if ri := v.FieldByName("RequestItems"); ri.Kind() == reflect.Map {
		for _, k := range ri.MapKeys() {
			out = append(out, named{"", k.String()})
		}
	}
	return out
}
