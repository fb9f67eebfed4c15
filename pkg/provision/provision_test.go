package provision_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/provision"
)

func TestMain(m *testing.M) { awstest.Main(m, awstest.S3, awstest.SQS, awstest.DynamoDB) }

// TestProvisionTwice: a second provision on the same endpoints changes
// nothing and succeeds. gofakes3 (like s3rver and other S3-compatible
// stores) answers CreateBucket on a bucket the caller owns with 409
// BucketAlreadyExists, which made the second run fail. Under
// SLUICE_TEST_ENDPOINT the same test runs against LocalStack.
func TestProvisionTwice(t *testing.T) {
	env := awstest.Shared(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", env.Endpoint(awstest.S3))
	t.Setenv("AWS_ENDPOINT_URL_SQS", env.Endpoint(awstest.SQS))
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", env.Endpoint(awstest.DynamoDB))
	t.Setenv("AWS_REGION", awstest.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	cfg, err := awsconfig.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	o := provision.Options{Bucket: "twice-bucket", QueuePrefix: "twice-", TablePrefix: "twice-", PathStyle: true}
	for run := 1; run <= 2; run++ {
		steps, err := provision.Provision(t.Context(), cfg, o)
		if err != nil {
			t.Fatalf("run %d: %v (steps %+v)", run, err, steps)
		}
		seen := map[string]string{}
		for _, s := range steps {
			seen[s.What] = s.Result
		}
		if seen["bucket twice-bucket"] != "ok" {
			t.Fatalf("run %d: bucket step %q", run, seen["bucket twice-bucket"])
		}
		// TTL: on where the endpoint has it, and a skipped step, saying
		// so, where it does not (dynalite has no UpdateTimeToLive).
		for _, table := range []string{"twice-batches", "twice-rejects"} {
			r, ok := seen["TTL on "+table+" (expiresAt)"]
			if !ok || (r != "ok" && !strings.HasPrefix(r, "skipped: the endpoint does not implement it")) {
				t.Fatalf("run %d: TTL step on %s: %q (present %v)", run, table, r, ok)
			}
			if !env.External() && r == "ok" {
				t.Fatalf("run %d: dynalite has no UpdateTimeToLive, yet TTL on %s is %q", run, table, r)
			}
		}
	}
}
