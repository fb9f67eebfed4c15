package awstest_test

import (
	"net/http"
	"testing"

	"github.com/sluicehq/sluice/pkg/awstest"
)

func TestStartsEveryServiceAndStops(t *testing.T) {
	env := awstest.New(t)
	for _, s := range []awstest.Service{awstest.S3, awstest.SQS, awstest.DynamoDB, awstest.SES} {
		ep := env.Endpoint(s)
		resp, err := http.Get(ep + "/")
		if err != nil {
			t.Fatalf("%s at %s: %v", s, ep, err)
		}
		resp.Body.Close()
		if cfg := env.Config(s); *cfg.BaseEndpoint != ep || cfg.Region == "" {
			t.Errorf("%s: config %+v", s, cfg)
		}
	}
	if env.External() {
		return
	}
	// Endpoints must be gone once the Env is closed, or every test binary
	// would leave node processes behind.
	eps := map[awstest.Service]string{}
	for _, s := range []awstest.Service{awstest.SQS, awstest.DynamoDB, awstest.SES} {
		eps[s] = env.Endpoint(s)
	}
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	for s, ep := range eps {
		if resp, err := http.Get(ep + "/"); err == nil {
			resp.Body.Close()
			t.Errorf("%s still answers at %s after Close", s, ep)
		}
	}
}
