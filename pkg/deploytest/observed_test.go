package deploytest

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/fault"
)

// The live check runs after the services tests (services/privilege_test.go)
// on the calls the services really made; these cases prove it catches what
// it is for, on a small sample of such calls.
func TestObservedCallsChecksCatch(t *testing.T) {
	calls, err := ReadCalls("testdata/observed.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if got := CheckObserved(load(t, nil), calls, false); len(got) != 0 {
		t.Fatalf("the sample is allowed by deploy/terraform, yet:\n%s", strings.Join(got, "\n"))
	}
	cases := []struct {
		name  string
		edit  func(map[string][]byte)
		extra []fault.Call
		full  bool
		want  []string
	}{
		{
			// Issue 11 item 13: the grant as it was.
			name: "splitter without ReadArchive",
			edit: func(files map[string][]byte) {
				files["iam.tf"] = []byte(strings.Replace(string(files["iam.tf"]), `resources = ["${aws_s3_bucket.this.arn}/input_archive/*"]
  }
  statement {
    sid       = "WriteChunksAndArchive"`, `resources = ["${aws_s3_bucket.this.arn}/input/*"]
  }
  statement {
    sid       = "WriteChunksAndArchive"`, 1))
			},
			want: []string{"splitter:", "s3:GetObject s3:input_archive/b1/orders.csv", "does not allow"},
		},
		{
			// Issue 11 item 14: sampling by a Scan.
			name:  "notifier scans the batches table",
			extra: []fault.Call{{Process: "notifier", Service: "DynamoDB", Operation: "Scan", Resource: "x-batches"}},
			want:  []string{"notifier:", "dynamodb:Scan dynamodb:batches", "does not allow"},
		},
		{
			name:  "a writer reads back what it wrote",
			extra: []fault.Call{{Process: "worker", Service: "S3", Operation: "HeadObject", Resource: "bkt/b1/output/parts/part00000.csv"}},
			want:  []string{"worker:", "s3:GetObject s3:b1/output/parts/part00000.csv"},
		},
		{
			// A sink's call on a partner's queue is the delivery_* grant,
			// which only the deliverer holds.
			name:  "a partner's queue written by the worker",
			extra: []fault.Call{{Process: "worker", Service: "SQS", Operation: "SendMessage", Resource: awsconfig.PartnerPrefix + "their-events"}},
			want:  []string{"worker:", "sqs:SendMessage " + sinkQueues, "does not allow"},
		},
		{
			name:  "a partner's bucket read",
			extra: []fault.Call{{Process: "deliverer", Service: "S3", Operation: "GetObject", Resource: awsconfig.PartnerPrefix + "their-bucket/x"}},
			want:  []string{"deliverer:", "no delivery grant covers it"},
		},
		{
			// A DeleteObject under If-Match needs s3:GetObject too: the
			// notifier may delete intermediates, but not read them.
			name:  "a conditional delete without s3:GetObject",
			extra: []fault.Call{{Process: "notifier", Service: "S3", Operation: "DeleteObject.IfMatch", Resource: "bkt/b1/to_process/part00000.csv"}},
			want:  []string{"notifier:", "s3:GetObject s3:b1/to_process/part00000.csv", "does not allow"},
		},
		{
			name:  "an operation without a known IAM action",
			extra: []fault.Call{{Process: "merger", Service: "S3", Operation: "PutBucketPolicy", Resource: "bkt"}},
			want:  []string{"merger:", "no IAM action known"},
		},
		{
			name: "a grant no run used",
			full: true,
			want: []string{"worker:", "grants dynamodb:BatchGetItem dynamodb:reference", "no test run used"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := load(t, c.edit)
			got := CheckObserved(m, append(append([]fault.Call{}, calls...), c.extra...), c.full)
			for _, p := range got {
				if containsAll(p, c.want) {
					return
				}
			}
			t.Errorf("no problem mentions all of %q; got:\n%s", c.want, strings.Join(got, "\n"))
		})
	}
}

func TestIAMActionsOfCalls(t *testing.T) {
	for call, want := range map[fault.Call]string{
		{Service: "S3", Operation: "HeadObject", Resource: "b/input_archive/x/y.csv"}:                     "s3:GetObject s3:input_archive/x/y.csv",
		{Service: "S3", Operation: "UploadPart", Resource: "b/k/output/parts/p.csv"}:                      "s3:PutObject s3:k/output/parts/p.csv",
		{Service: "S3", Operation: "ListObjectsV2", Resource: "b"}:                                        "s3:ListBucket s3:bucket",
		{Service: "S3", Operation: "HeadBucket", Resource: "b"}:                                           "s3:ListBucket s3:bucket",
		{Service: "SQS", Operation: "DeleteMessageBatch", Resource: "p-chunks"}:                           "sqs:DeleteMessage sqs:chunks",
		{Service: "SQS", Operation: "SendMessage", Resource: "p-notify-dlq"}:                              "sqs:SendMessage sqs:notify_dlq",
		{Service: "DynamoDB", Operation: "BatchGetItem", Resource: "p-reference"}:                         "dynamodb:BatchGetItem dynamodb:reference",
		{Service: "DynamoDB", Operation: "Query", Resource: "p-batches/index/unfinished"}:                 "dynamodb:Query dynamodb:batches/index/unfinished",
		{Service: "S3", Operation: "CopyObject", Resource: awsconfig.PartnerPrefix + "their/in/b1/o.csv"}: "s3:PutObject " + sinkObjects,
		{Service: "SQS", Operation: "SendMessage", Resource: awsconfig.PartnerPrefix + "p-chunks"}:        "sqs:SendMessage " + sinkQueues,
	} {
		if got, err := grantOf(call); err != nil || got != want {
			t.Errorf("%+v: %q, %v; want %q", call, got, err, want)
		}
	}
	if !allows("s3:GetObject s3:*/output/completed/*", "s3:GetObject s3:b1/output/completed/x.csv") ||
		allows("s3:GetObject s3:*/output/completed/*", "s3:GetObject s3:b1/output/parts/x.csv") ||
		allows("s3:PutObject s3:input/*", "s3:GetObject s3:input/x.csv") {
		t.Error("allows: IAM pattern matching is wrong")
	}
}
