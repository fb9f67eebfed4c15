package awsconfig

import (
	"context"
	"net/url"
	"reflect"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
)

// ResourceObserver, when a CallCounter also is one, hears the resources
// each call names, before it is sent (so presigned requests count too):
// fault.Observer records them for the least-privilege test.
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
				partner, _ := middleware.GetStackValue(ctx, partnerKey{}).(bool)
				for _, r := range resources(in.Parameters) {
					name := r.name
					if partner && r.suffix == "" {
						name = PartnerPrefix + name
					}
					for _, o := range obs {
						o.AWSResource(svc, op+r.suffix, name)
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
		if s("IfMatch") != "" {
			// A conditional call may need more than its plain form: a
			// DeleteObject under If-Match needs s3:GetObject too.
			out = append(out, named{".IfMatch", strings.TrimSuffix(s("Bucket")+"/"+s("Key"), "/")})
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

// PartnerPrefix starts the resource a ResourceObserver hears for a call
// made through Partner's configuration: the resource is a partner's (a
// delivery sink's bucket or queue), granted by the delivery_* Terraform
// variables rather than by our own bucket's and queues' grants.
const PartnerPrefix = "partner:"

type partnerKey struct{}

// Partner returns cfg (the process's own configuration, so its calls are
// counted, traced and observed like the rest) marked so that the
// resources its calls name are heard as a partner's. A copy source stays
// ours: CopyObject reads our bucket and writes the partner's.
func Partner(cfg aws.Config) aws.Config {
	cfg = cfg.Copy()
	cfg.APIOptions = append(cfg.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("SluicePartnerResources",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				return next.HandleInitialize(middleware.WithStackValue(ctx, partnerKey{}, true), in)
			}), middleware.Before)
	})
	return cfg
}
