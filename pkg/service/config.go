package service

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/wire"
)

// Config is every setting a service reads, all from SLUICE_* environment
// variables, parsed here and nowhere else. Vars lists them with their
// defaults; the README's table is made from the same list.
type Config struct {
	Stage          string
	Backend        string // "aws" or "local"
	Data           string // the data directory of the local backend
	Bucket         string
	QueuePrefix    string
	TablePrefix    string
	PipelineConfig string
	MailFrom       string
	MailTo         []string
	LinkTTL        time.Duration
	Concurrency    int
	Visibility     time.Duration
	Wait           time.Duration
	Drain          time.Duration
	HTTPAddr       string
	PathStyle      bool
	ReferenceCache int
	LogLevel       string
	// MaxReceive is the queues' max-receive count (the redrive policy):
	// a message failing on that receive fails its batch.
	MaxReceive int
	// DuplicateSends is a test hook: every message this service sends is
	// sent twice, to prove the stages tolerate at-least-once delivery.
	DuplicateSends bool
	// ObserveCalls is a test hook: a file to which every distinct AWS
	// call (operation, resource) is appended, for the least-privilege test.
	ObserveCalls string
	// CrashAt is a test hook: exit at a fault point (fault.CrashAt).
	CrashAt string
}

// Var is one environment variable.
type Var struct {
	Name, Default, Help string
}

// Vars are the services' environment variables, in README order.
var Vars = []Var{
	{"SLUICE_BACKEND", "aws", "aws, or local: the embedded adapters on SLUICE_DATA, shared by the four services as processes on one machine"},
	{"SLUICE_DATA", ".sluice", "with SLUICE_BACKEND=local: the data directory (the layout `sluice run` uses)"},
	{"SLUICE_BUCKET", "", "the bucket (required): input/ is watched, outputs are written under <batch>/"},
	{"SLUICE_QUEUE_PREFIX", "sluice-", "queue names are PREFIX + ingest, chunks, merge, notify; each has PREFIX + NAME + -dlq"},
	{"SLUICE_TABLE_PREFIX", "sluice-", "table names are PREFIX + batches, rejects, reference"},
	{"SLUICE_CONFIG", "", "pipeline configuration file (YAML); default: the built-in one"},
	{"SLUICE_MAIL_FROM", "(from the configuration)", "the sender, a verified SES identity"},
	{"SLUICE_MAIL_TO", "(from the configuration)", "recipients, comma-separated"},
	{"SLUICE_LINK_TTL", "1h", "how long emailed presigned links live (at most 7 days, and never longer than the signing credentials)"},
	{"SLUICE_CONCURRENCY", "worker: CPUs; others: 1", "messages handled at once by this process"},
	{"SLUICE_VISIBILITY", "splitter 5m, worker 2m, merger 5m, notifier 1m", "visibility timeout per receive; a heartbeat extends it at half"},
	{"SLUICE_WAIT", "20s", "SQS long-poll wait (0-20s)"},
	{"SLUICE_DRAIN", "25s", "on SIGTERM, how long in-flight work may finish (keep below the ECS stopTimeout)"},
	{"SLUICE_HTTP_ADDR", ":9090", "listen address for /metrics, /healthz and /readyz"},
	{"SLUICE_S3_PATH_STYLE", "false", "path-style S3 URLs (LocalStack and emulators)"},
	{"SLUICE_REFERENCE_CACHE", "100000", "reference keys each worker keeps in memory (negative: no cache)"},
	{"SLUICE_MAX_RECEIVE", "5", "the queue's redrive maxReceiveCount: a message that fails on that receive is dead-lettered with its error and its batch fails (0: leave it to the queue)"},
	{"SLUICE_LOG_LEVEL", "info", "debug, info, warn, error (JSON lines on stderr)"},
	{"SLUICE_TEST_DUPLICATE_SENDS", "false", "test hook: send every message twice"},
	{"SLUICE_TEST_OBSERVE_CALLS", "", "test hook: append each distinct AWS call (operation, resource) to this file as a JSON line"},
	{"SLUICE_CRASH_AT", "", "test hook: `POINT[@N]` exits at once the Nth time the stage reaches a fault point (see `pkg/pipeline` `Points`, and `fault.PointLedgerAfterShard` inside the DynamoDB ledger)"},
}

// Stages are the four services, in pipeline order (pipeline.Topology).
var Stages = pipeline.Services()

// stageDefaults are a stage's default visibility and concurrency, from
// pipeline.Topology; an unknown stage gets the longest visibility and one
// handler (Run refuses it anyway).
func stageDefaults(stage string) (time.Duration, int) {
	st, err := pipeline.StageOf(stage)
	if err != nil {
		return 5 * time.Minute, 1
	}
	if st.Concurrency == 0 {
		return st.Visibility, runtime.NumCPU()
	}
	return st.Visibility, st.Concurrency
}

// LoadConfig reads the environment for one stage.
func LoadConfig(stage string, getenv func(string) string) (Config, error) {
	get := func(k, def string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return def
	}
	var errs []string
	dur := func(k string, def time.Duration) time.Duration {
		v := get(k, "")
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Sprintf("%s=%q: not a duration like 30s or 2m", k, v))
		}
		return d
	}
	num := func(k string, def int) int {
		v := get(k, "")
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q: not a number", k, v))
		}
		return n
	}
	flag := func(k string) bool {
		v := get(k, "false")
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q: not true or false", k, v))
		}
		return b
	}
	defVis, defConc := stageDefaults(stage)
	c := Config{
		Stage:          stage,
		Backend:        get("SLUICE_BACKEND", "aws"),
		Data:           get("SLUICE_DATA", ".sluice"),
		Bucket:         get("SLUICE_BUCKET", ""),
		QueuePrefix:    get("SLUICE_QUEUE_PREFIX", "sluice-"),
		TablePrefix:    get("SLUICE_TABLE_PREFIX", "sluice-"),
		PipelineConfig: get("SLUICE_CONFIG", ""),
		MailFrom:       get("SLUICE_MAIL_FROM", ""),
		LinkTTL:        dur("SLUICE_LINK_TTL", time.Hour),
		Visibility:     dur("SLUICE_VISIBILITY", defVis),
		Wait:           dur("SLUICE_WAIT", 20*time.Second),
		Drain:          dur("SLUICE_DRAIN", 25*time.Second),
		HTTPAddr:       get("SLUICE_HTTP_ADDR", ":9090"),
		PathStyle:      flag("SLUICE_S3_PATH_STYLE"),
		ReferenceCache: num("SLUICE_REFERENCE_CACHE", 100000),
		LogLevel:       get("SLUICE_LOG_LEVEL", "info"),
		MaxReceive:     num("SLUICE_MAX_RECEIVE", 5),
		DuplicateSends: flag("SLUICE_TEST_DUPLICATE_SENDS"),
		ObserveCalls:   get("SLUICE_TEST_OBSERVE_CALLS", ""),
		CrashAt:        get("SLUICE_CRASH_AT", ""),
	}
	c.Concurrency = num("SLUICE_CONCURRENCY", defConc)
	if to := get("SLUICE_MAIL_TO", ""); to != "" {
		for _, a := range strings.Split(to, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.MailTo = append(c.MailTo, a)
			}
		}
	}
	errs = append(errs, c.check()...)
	if len(errs) > 0 {
		return c, fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

// check lists what is wrong with settings that each parsed.
func (c Config) check() []string {
	var errs []string
	switch c.Backend {
	case "aws":
		if c.Bucket == "" {
			errs = append(errs, "SLUICE_BUCKET is required")
		}
	case "local":
	default:
		errs = append(errs, fmt.Sprintf("SLUICE_BACKEND=%q: want aws or local", c.Backend))
	}
	if c.Wait > 20*time.Second {
		errs = append(errs, "SLUICE_WAIT may be at most 20s (the SQS long-poll maximum)")
	}
	if c.Visibility < 2*time.Second {
		errs = append(errs, "SLUICE_VISIBILITY must be at least 2s")
	}
	if c.LinkTTL > 7*24*time.Hour {
		errs = append(errs, "SLUICE_LINK_TTL may be at most 168h (the SigV4 presigning maximum)")
	}
	if c.Concurrency < 1 {
		errs = append(errs, "SLUICE_CONCURRENCY must be at least 1")
	}
	return errs
}

// AWSOptions name the AWS resources for wire.AWS.
func (c Config) AWSOptions() wire.AWSOptions {
	cache := c.ReferenceCache
	if cache == 0 {
		cache = -1 // SLUICE_REFERENCE_CACHE=0 is no cache; wire's 0 is the default
	}
	return wire.AWSOptions{
		Bucket: c.Bucket, QueuePrefix: c.QueuePrefix, TablePrefix: c.TablePrefix, PathStyle: c.PathStyle,
		ReferenceCache: cache, MailFrom: c.MailFrom,
	}
}
