package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
)

func TestDeliverConfig(t *testing.T) {
	p, err := config.Parse([]byte(`
deliver:
  - {name: partner, type: webhook, url: "https://partner.example/hook", secretEnv: PARTNER_SECRET, retries: 2, backoff: 50ms, timeout: 5s}
  - {name: archive, type: s3, bucket: their-bucket, prefix: in/sluice, roleArn: "arn:aws:iam::123456789012:role/drop", errorReport: true}
  - {name: events, type: sqs, queueUrl: "https://sqs.eu-west-1.amazonaws.com/123456789012/done"}
feeds:
  - {name: orders, prefix: orders/}
  - name: returns
    prefix: returns/
    deliver: [{name: only, type: sqs, queueUrl: "https://sqs.eu-west-1.amazonaws.com/1/r"}]
  - {name: quiet, prefix: quiet/, deliver: []}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Deliver) != 3 || p.Deliver[0].Backoff.Duration != 50*time.Millisecond || !p.Deliver[1].ErrorReport || p.Deliver[2].QueueURL == "" {
		t.Fatalf("top level %+v", p.Deliver)
	}
	sinks := p.Sinks()
	if len(sinks["orders"]) != 3 || len(sinks["returns"]) != 1 || sinks["returns"][0].Name != "only" || len(sinks["quiet"]) != 0 {
		t.Fatalf("per feed: a feed inherits the list, its own list replaces it, [] turns it off: %+v", sinks)
	}
	if fc, _ := p.ForFeed("returns"); len(fc.Deliver) != 1 {
		t.Fatalf("ForFeed(returns).Deliver = %+v", fc.Deliver)
	}
	// Without deliver: the default configuration (and its digest) is unchanged.
	if d := config.Default(); len(d.Deliver) != 0 || strings.Contains(string(config.DefaultYAML()), "deliver") {
		t.Fatal("the built-in default delivers")
	}
	for bad, want := range map[string]string{
		`deliver: [{type: webhook, url: "https://a/x", secretEnv: S}]`:                               "name is required",
		`deliver: [{name: a, type: ftp}]`:                                                            `type "ftp": must be webhook, s3 or sqs`,
		`deliver: [{name: a}]`:                                                                       "type is required",
		`deliver: [{name: a, type: webhook, url: "https://a/x"}]`:                                    "secretEnv is required",
		`deliver: [{name: a, type: webhook, secretEnv: S, url: "file:///etc"}]`:                      "http or https",
		`deliver: [{name: a, type: s3}]`:                                                             "bucket is required",
		`deliver: [{name: a, type: s3, bucket: b, url: "https://a/x"}]`:                              "url does not apply to a s3 sink",
		`deliver: [{name: a, type: sqs, queueUrl: "https://q/1/x", errorReport: true}]`:              "errorReport does not apply",
		`deliver: [{name: a, type: sqs, queueUrl: "https://q/1/x", colour: red}]`:                    "field colour not found",
		`deliver: [{name: a, type: sqs, queueUrl: "https://q/1/x"}, {name: a, type: s3, bucket: b}]`: `"a" appears twice`,
		`deliver: [{name: "../x", type: s3, bucket: b}]`:                                             "sink name",
		`feeds: [{name: f, prefix: f/, deliver: [{name: a, type: s3}]}]`:                             "feeds[0] f: deliver[0] a: bucket is required",
	} {
		_, err := config.Parse([]byte(bad))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", bad, err, want)
		}
	}
}
