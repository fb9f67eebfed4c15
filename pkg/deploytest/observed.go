package deploytest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/fault"
)

// Least privilege by observation. The services record every distinct AWS
// call they make (fault.Observer, SLUICE_TEST_OBSERVE_CALLS) in the
// emulator e2e, crash and chaos tests. CheckObserved holds those calls
// against the Terraform: each must be allowed by its service's policy, and
// each grant must have been used by some call, or be in Unobserved with
// the reason no emulator run can use it.

// Unobserved are the grants no test run reliably exercises, keyed by IAM
// action, by "action resource" (resources as CheckTerraform names them),
// or by "service: action resource". A call that does happen is still
// checked against the policy.
var Unobserved = map[string]string{
	// The visibility heartbeat (at half the visibility timeout) and the
	// delayed release after a transient failure: no test's handler runs
	// that long or fails that way on every run.
	"sqs:ChangeMessageVisibility": "heartbeat and release; timing-dependent in tests",
	// S3 answers a missing key with 404 instead of 403 only when the
	// caller may list the bucket; no request is made with it.
	"s3:ListBucket": "turns 403 into 404 for a missing key; never called",
	// Sent only when a multipart upload fails half-way, which no emulator
	// run provokes; the lifecycle rule aborts what a killed task leaves.
	"s3:AbortMultipartUpload": "only after a failed multipart upload",
	// The worker asks the ECS agent over HTTP; the agent calls ECS with
	// the task role. The SDK never sees these calls.
	"ecs:GetTaskProtection":    "called by the ECS agent, not the SDK",
	"ecs:UpdateTaskProtection": "called by the ECS agent, not the SDK",
	// A chunk that can never be processed fails its batch, and the worker
	// sends the failure on to notify. pkg/service's dead-letter test covers
	// it, not the services tests whose calls are observed (to do).
	"worker: sqs:SendMessage " + queueRes + "notify": "fails a batch whose chunk is dead-lettered",
	// Collecting a superseded reference version scans the reference table
	// for its rows (pkg/dynamoledger catalog_load.go); a version is kept for
	// reference.Grace (10 minutes) after it is superseded, longer than any
	// test run, so no observed run makes the call.
	"splitter: dynamodb:Scan " + tableRes + "reference": "collecting an old reference version, 10 minutes after it is superseded",
	// resolve_all_queue_urls, off by default, for tools beyond the services.
	"sqs:GetQueueUrl " + allQueues: "resolve_all_queue_urls, off by default",
	// The sinks' calls are observed (awsconfig.Partner); these two are not
	// made in an emulator run: a multipart copy into a partner's bucket
	// failing half-way, and a partner's role (no STS emulator).
	"deliverer: s3:AbortMultipartUpload " + sinkObjects: "only after a failed multipart upload to a partner's bucket",
	"deliverer: sts:AssumeRole " + sinkRoles:            "a partner's role (roleArn); no STS emulator",
}

// ReadCalls reads an observed-calls file (JSON lines).
func ReadCalls(path string) ([]fault.Call, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []fault.Call
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var c fault.Call
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, sc.Text(), err)
		}
		out = append(out, c)
	}
	return out, sc.Err()
}

// s3Actions maps the S3 operations the adapters use to the IAM action AWS
// checks for them; multipart and copy targets need s3:PutObject, a copy's
// source and a HEAD s3:GetObject, a HeadBucket or a listing s3:ListBucket,
// a conditional delete s3:GetObject besides s3:DeleteObject.
var s3Actions = map[string]string{
	"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject",
	"CopyObject.CopySource": "s3:GetObject", "UploadPartCopy.CopySource": "s3:GetObject",
	"PutObject": "s3:PutObject", "CopyObject": "s3:PutObject", "UploadPartCopy": "s3:PutObject",
	"CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
	"AbortMultipartUpload": "s3:AbortMultipartUpload",
	"DeleteObject":         "s3:DeleteObject", "DeleteObjects": "s3:DeleteObject",
	// The If-Match of a conditional call: a DeleteObject under If-Match
	// needs s3:GetObject as well (S3's conditional deletes), and a read
	// under one no more than the read.
	"DeleteObject.IfMatch": "s3:GetObject", "GetObject.IfMatch": "s3:GetObject", "HeadObject.IfMatch": "s3:GetObject",
	"ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket", "HeadBucket": "s3:ListBucket",
}

// sqsActions maps the batch forms to the action of their single form.
var sqsActions = map[string]string{
	"SendMessageBatch": "sqs:SendMessage", "DeleteMessageBatch": "sqs:DeleteMessage",
	"ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}

// grantOf names one call as the "action resource" a policy must allow,
// with resources named as CheckTerraform names them. Queue and table
// names are matched by their suffix, since each test stack has its own
// prefix.
func grantOf(c fault.Call) (string, error) {
	if _, ok := strings.CutPrefix(c.Resource, awsconfig.PartnerPrefix); ok {
		return partnerGrantOf(c)
	}
	switch c.Service {
	case "S3":
		a, ok := s3Actions[c.Operation]
		if !ok {
			return "", fmt.Errorf("no IAM action known for S3 %s", c.Operation)
		}
		if _, key, ok := strings.Cut(c.Resource, "/"); ok && a != "s3:ListBucket" {
			return a + " " + objects + key, nil
		}
		return a + " " + bucket, nil
	case "SQS":
		a := sqsActions[c.Operation]
		if a == "" {
			a = "sqs:" + c.Operation
		}
		for _, s := range Stages {
			switch {
			case strings.HasSuffix(c.Resource, s.Queue+"-dlq"):
				return a + " " + queueRes + s.Queue + "_dlq", nil
			case strings.HasSuffix(c.Resource, s.Queue):
				return a + " " + queueRes + s.Queue, nil
			}
		}
		return "", fmt.Errorf("SQS %s on %s, none of the pipeline's queues", c.Operation, c.Resource)
	case "DynamoDB":
		table, index, _ := strings.Cut(c.Resource, "/index/")
		if index != "" {
			index = "/index/" + index
		}
		for _, t := range []string{"batches", "rejects", "reference"} {
			if strings.HasSuffix(table, t) {
				return "dynamodb:" + c.Operation + " " + tableRes + t + index, nil
			}
		}
		return "", fmt.Errorf("DynamoDB %s on %s, none of the pipeline's tables", c.Operation, c.Resource)
	case "SESv2":
		if c.Operation == "SendEmail" {
			return "ses:SendEmail " + sesIDs, nil
		}
	}
	return "", fmt.Errorf("no IAM action known for %s %s", c.Service, c.Operation)
}

// partnerGrantOf names a delivery sink's call on a partner's bucket or
// queue (awsconfig.Partner) as the grant the delivery_* variables give.
func partnerGrantOf(c fault.Call) (string, error) {
	switch c.Service {
	case "S3":
		if a, ok := s3Actions[c.Operation]; ok && (a == "s3:PutObject" || a == "s3:AbortMultipartUpload") {
			return a + " " + sinkObjects, nil
		}
	case "SQS":
		if a := sqsActions[c.Operation]; a == "sqs:SendMessage" || c.Operation == "SendMessage" {
			return "sqs:SendMessage " + sinkQueues, nil
		}
	}
	return "", fmt.Errorf("%s %s on a partner's %s: no delivery grant covers it", c.Service, c.Operation, c.Resource)
}

// allows reports whether grant ("action resource") covers want; object
// resources are IAM patterns, where * spans any characters, / included.
func allows(grant, want string) bool {
	ga, gr, _ := strings.Cut(grant, " ")
	wa, wr, _ := strings.Cut(want, " ")
	if ga != wa {
		return false
	}
	gp, gObj := strings.CutPrefix(gr, objects)
	wk, wObj := strings.CutPrefix(wr, objects)
	if !gObj || !wObj || gr == bucket || wr == bucket {
		return gr == wr
	}
	return globRe(gp).MatchString(wk)
}

func globRe(pattern string) *regexp.Regexp {
	q := regexp.QuoteMeta(pattern)
	q = strings.ReplaceAll(q, `\*`, ".*")
	q = strings.ReplaceAll(q, `\?`, ".")
	return regexp.MustCompile("^" + q + "$")
}

// CheckObserved returns every call a service made that its policy does
// not allow and, when complete (every test ran), every grant no call used
// that Unobserved does not explain.
func CheckObserved(m *Module, calls []fault.Call, complete bool) []string {
	var p problems
	used := map[string]map[string]bool{}
	for _, c := range calls {
		if c.Operation == "truncated" {
			p.add("%s: recorded more distinct calls than the observer keeps", c.Process)
			continue
		}
		g, err := grantOf(c)
		if err != nil {
			p.add("%s: %v", c.Process, err)
			continue
		}
		if used[c.Process] == nil {
			used[c.Process] = map[string]bool{}
		}
		used[c.Process][g] = true
	}
	for _, s := range Stages {
		doc := m.Block("data", "aws_iam_policy_document", s.Name)
		if doc == nil {
			p.add("%s: no data.aws_iam_policy_document.%s", s.Name, s.Name)
			continue
		}
		have := policyGrants(doc, s.Name, &p)
		for _, w := range sortedKeys(used[s.Name]) {
			if !anyAllows(have, w) {
				p.add("%s: called %s, which its policy does not allow", s.Name, w)
			}
		}
		if !complete {
			continue
		}
		var unused []string
		for g := range have {
			a, _, _ := strings.Cut(g, " ")
			if Unobserved[a] != "" || Unobserved[g] != "" || Unobserved[s.Name+": "+g] != "" {
				continue
			}
			if !anyUsed(g, used[s.Name]) {
				unused = append(unused, g)
			}
		}
		sort.Strings(unused)
		for _, g := range unused {
			p.add("%s: its policy grants %s, which no test run used", s.Name, g)
		}
	}
	return p
}

func anyAllows(have map[string]bool, want string) bool {
	for g := range have {
		if allows(g, want) {
			return true
		}
	}
	return false
}

func anyUsed(grant string, used map[string]bool) bool {
	for w := range used {
		if allows(grant, w) {
			return true
		}
	}
	return false
}
