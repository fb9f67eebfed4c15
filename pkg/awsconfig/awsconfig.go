// Package awsconfig loads the AWS SDK configuration the way every Sluice
// process does: the SDK's default chain (environment, AWS_ENDPOINT_URL_<SERVICE>,
// profiles, ECS task roles), plus a middleware that counts every API call
// attempt by service and operation, which the metrics export and the
// benchmark turns into a cost.
package awsconfig

import (
	"context"
	"github.com/sluicehq/sluice/pkg/tracing"
	"go.opentelemetry.io/contrib/instrumentation/github.com/aws/aws-sdk-go-v2/otelaws"
	"log/slog"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
)

// CallCounter hears about every API call attempt.
type CallCounter interface {
	AWSCall(service, operation string)
}

// ItemCounter, when a CallCounter also is one, hears how many items each
// DynamoDB call touches (what on-demand capacity is billed by): the keys of
// a BatchGetItem, the requests of a BatchWriteItem, one for the rest. It
// is called once per call, before retries.
type ItemCounter interface {
	AWSItems(service, operation string, n int)
}

// Load returns the SDK configuration; calls are reported to counters, and
// the SDK's own log lines go to slog's default logger.
func Load(ctx context.Context, counters ...CallCounter) (aws.Config, error) {
	return LoadLogged(ctx, nil, counters...)
}

// LoadLogged is Load with the SDK's log lines going to log (nil: slog's
// default logger, read at each line).
func LoadLogged(ctx context.Context, log *slog.Logger, counters ...CallCounter) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{config.WithLogger(SDKLogger(log))}
	if len(counters) > 0 {
		opts = append(opts, config.WithAPIOptions([]func(*middleware.Stack) error{countCalls(counters), countItems(counters), observeResources(counters)}))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err == nil && tracing.On() {
		// A span per AWS call, a child of the message's span; only when
		// tracing is on, so an untraced service pays nothing per call.
		otelaws.AppendMiddlewares(&cfg.APIOptions)
	}
	return cfg, err
}

// countCalls sits at the end of the finalize step, after the retry
// middleware, so each attempt (each billed request) is counted.
func countCalls(counters []CallCounter) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("SluiceCountCalls",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				svc, op := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
				for _, c := range counters {
					c.AWSCall(svc, op)
				}
				return next.HandleFinalize(ctx, in)
			}), middleware.After)
	}
}

// countItems reads the typed input at the initialize step.
func countItems(counters []CallCounter) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("SluiceCountItems",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				n := 1
				switch p := in.Parameters.(type) {
				case *dynamodb.BatchGetItemInput:
					n = 0
					for _, ka := range p.RequestItems {
						n += len(ka.Keys)
					}
				case *dynamodb.BatchWriteItemInput:
					n = 0
					for _, wr := range p.RequestItems {
						n += len(wr)
					}
				}
				svc, op := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
				for _, c := range counters {
					if ic, ok := c.(ItemCounter); ok {
						ic.AWSItems(svc, op, n)
					}
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	}
}

// Counts is a CallCounter that keeps totals in memory.
type Counts struct {
	mu    sync.Mutex
	n     map[[2]string]int
	items map[[2]string]int
}

// AWSItems implements ItemCounter.
func (c *Counts) AWSItems(service, operation string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items = map[[2]string]int{}
	}
	c.items[[2]string{service, operation}] += n
}

// Items returns the item counts by "Service/Operation".
func (c *Counts) Items() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.items {
		out[k[0]+"/"+k[1]] = v
	}
	return out
}

// AWSCall implements CallCounter.
func (c *Counts) AWSCall(service, operation string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[[2]string]int{}
	}
	c.n[[2]string{service, operation}]++
}

// Snapshot returns the counts by "Service/Operation".
func (c *Counts) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.n {
		out[k[0]+"/"+k[1]] = v
	}
	return out
}
