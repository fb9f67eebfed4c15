package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Sink is one entry of a deliver: list: where a finished batch's output
// goes besides the email (pkg/deliver). A feed's own list replaces the
// top level's whole (as any list a feed sets does); `deliver: []` in a
// feed turns delivery off for it.
type Sink struct {
	Name string `yaml:"name" json:"name"` // unique in the feed; with the batch, the idempotency key
	Type string `yaml:"type" json:"type"` // webhook, s3 or sqs

	// webhook
	URL       string   `yaml:"url,omitempty" json:"url,omitempty"`
	SecretEnv string   `yaml:"secretEnv,omitempty" json:"secretEnv,omitempty"` // env var holding the HMAC secret
	Retries   int      `yaml:"retries,omitempty" json:"retries,omitempty"`     // extra tries on no answer, 429, 5xx (default 5)
	Backoff   Duration `yaml:"backoff,omitempty" json:"backoff,omitzero"`      // first wait, doubled, with jitter (default 1s)
	Timeout   Duration `yaml:"timeout,omitempty" json:"timeout,omitzero"`      // per try (default 30s)

	// s3
	Bucket      string `yaml:"bucket,omitempty" json:"bucket,omitempty"`
	Prefix      string `yaml:"prefix,omitempty" json:"prefix,omitempty"`
	ErrorReport bool   `yaml:"errorReport,omitempty" json:"errorReport,omitempty"` // copy errors.csv too

	// sqs
	QueueURL string `yaml:"queueUrl,omitempty" json:"queueUrl,omitempty"`

	// s3 and sqs: a role to assume (a partner's account)
	RoleARN string `yaml:"roleArn,omitempty" json:"roleArn,omitempty"`
}

// Sink types.
const (
	SinkWebhook = "webhook"
	SinkS3      = "s3"
	SinkSQS     = "sqs"
)

// validateDeliver checks a deliver: list: names, types, and that each
// sink sets its type's keys and no other type's.
func validateDeliver(sinks []Sink) []error {
	var errs []error
	seen := map[string]bool{}
	for i, s := range sinks {
		at := fmt.Sprintf("deliver[%d]", i)
		if s.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", at))
		} else if err := ValidName("sink", s.Name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", at, err))
		}
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("deliver: the sink name %q appears twice", s.Name))
		}
		seen[s.Name] = true
		if s.Name != "" {
			at += " " + s.Name
		}
		for _, e := range s.validate() {
			errs = append(errs, fmt.Errorf("%s: %w", at, e))
		}
	}
	return errs
}

func (s Sink) validate() []error {
	var errs []error
	set := map[string]bool{
		"url": s.URL != "", "secretEnv": s.SecretEnv != "", "retries": s.Retries != 0, "backoff": s.Backoff.Duration != 0,
		"timeout": s.Timeout.Duration != 0, "bucket": s.Bucket != "", "prefix": s.Prefix != "", "errorReport": s.ErrorReport,
		"queueUrl": s.QueueURL != "", "roleArn": s.RoleARN != "",
	}
	var keys, need []string
	switch s.Type {
	case SinkWebhook:
		keys, need = []string{"url", "secretEnv", "retries", "backoff", "timeout"}, []string{"url", "secretEnv"}
		if u, err := url.Parse(s.URL); s.URL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			errs = append(errs, errors.New("url: must be an http or https URL with a host (the value is not repeated here: it may hold a credential)"))
		}
		if s.Retries < 0 || s.Backoff.Duration < 0 || s.Timeout.Duration < 0 {
			errs = append(errs, errors.New("retries, backoff and timeout must not be negative"))
		}
	case SinkS3:
		keys, need = []string{"bucket", "prefix", "roleArn", "errorReport"}, []string{"bucket"}
		if strings.HasPrefix(s.Prefix, "/") || strings.Contains(s.Prefix, "..") {
			errs = append(errs, fmt.Errorf("prefix %q: no leading / or ..", s.Prefix))
		}
	case SinkSQS:
		keys, need = []string{"queueUrl", "roleArn"}, []string{"queueUrl"}
		if u, err := url.Parse(s.QueueURL); s.QueueURL != "" && (err != nil || u.Host == "") {
			errs = append(errs, fmt.Errorf("queueUrl %q: must be a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)", s.QueueURL))
		}
	case "":
		return append(errs, errors.New("type is required: webhook, s3 or sqs"))
	default:
		return append(errs, fmt.Errorf("type %q: must be webhook, s3 or sqs", s.Type))
	}
	for _, k := range need {
		if !set[k] {
			errs = append(errs, fmt.Errorf("%s is required for a %s sink", k, s.Type))
		}
	}
	for _, k := range []string{"url", "secretEnv", "retries", "backoff", "timeout", "bucket", "prefix", "errorReport", "queueUrl", "roleArn"} {
		if set[k] && !contains(keys, k) {
			errs = append(errs, fmt.Errorf("%s does not apply to a %s sink", k, s.Type))
		}
	}
	return errs
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// Sinks lists every feed's sinks, for the builders and the deploy checks.
func (p *Pipeline) Sinks() map[string][]Sink {
	out := map[string][]Sink{}
	for _, f := range p.FeedList() {
		if len(f.Deliver) > 0 {
			out[f.Name] = f.Deliver
		}
	}
	return out
}
