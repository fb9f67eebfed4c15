package composetest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/service"
)

const initSh = "localstack/ready.d/init.sh"

// TestInitShIsAHook: LocalStack runs only executable scripts with a
// shebang, and says nothing when it skips one.
func TestInitShIsAHook(t *testing.T) {
	fi, err := os.Stat(filepath.Join(repoRoot(t), initSh))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("%s is not executable (git update-index --chmod=+x)", initSh)
	}
	if !strings.HasPrefix(readFile(t, initSh), "#!/bin/bash\n") {
		t.Errorf("%s does not start with #!/bin/bash", initSh)
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		if out, err := exec.Command(bash, "-n", filepath.Join(repoRoot(t), initSh)).CombinedOutput(); err != nil {
			t.Errorf("bash -n: %v\n%s", err, out)
		}
	}
}

// TestInitShDefaults: the hook's defaults are the services' and compose's.
func TestInitShDefaults(t *testing.T) {
	script := readFile(t, initSh)
	def := func(k string) string {
		m := regexp.MustCompile(`\$\{` + k + `:-([^}]*)\}`).FindStringSubmatch(script)
		if m == nil {
			t.Errorf("%s does not read %s with a default", initSh, k)
			return ""
		}
		return m[1]
	}
	cfg, err := service.LoadConfig("worker", func(k string) string {
		if k == "SLUICE_BUCKET" {
			return "b"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	compose := loadCompose(t).Services["splitter"]
	for k, want := range map[string]string{
		"SLUICE_QUEUE_PREFIX": cfg.QueuePrefix,
		"SLUICE_TABLE_PREFIX": cfg.TablePrefix,
		"SLUICE_BUCKET":       env(compose, "SLUICE_BUCKET"),
		"SLUICE_MAIL_FROM":    env(compose, "SLUICE_MAIL_FROM"),
	} {
		if got := def(k); got != want {
			t.Errorf("%s defaults %s to %q, want %q", initSh, k, got, want)
		}
	}
}

// awsCall is one run of awslocal: its arguments.
type awsCall []string

func (c awsCall) op() string { return strings.Join(c[:min(2, len(c))], " ") }

// flag returns the value after name.
func (c awsCall) flag(name string) string {
	if i := slices.Index(c, name); i >= 0 && i+1 < len(c) {
		return c[i+1]
	}
	return ""
}

// fakeAWSLocal stands in for LocalStack's awslocal: it records each call and
// remembers what was created, answering as the AWS CLI would with --query
// ... --output text.
const fakeAWSLocal = `#!/bin/bash
{ printf '%s\0' "$@"; printf '\036\0'; } >> "$FAKE_LOG"
arg() { local want=$1; shift; while [ $# -gt 0 ]; do if [ "$1" = "$want" ]; then echo "$2"; return; fi; shift; done; }
case "$1 $2" in
  "s3api head-bucket") [ -e "$FAKE_STATE/bucket-$(arg --bucket "$@")" ] ;;
  "s3api create-bucket") touch "$FAKE_STATE/bucket-$(arg --bucket "$@")" ;;
  "sqs get-queue-url") n=$(arg --queue-name "$@"); [ -e "$FAKE_STATE/queue-$n" ] && echo "http://localstack:4566/000000000000/$n" ;;
  "sqs create-queue") n=$(arg --queue-name "$@"); touch "$FAKE_STATE/queue-$n"; echo "http://localstack:4566/000000000000/$n" ;;
  "sqs get-queue-attributes") u=$(arg --queue-url "$@"); echo "arn:aws:sqs:us-east-1:000000000000:${u##*/}" ;;
  "dynamodb describe-table") [ -e "$FAKE_STATE/table-$(arg --table-name "$@")" ] ;;
  "dynamodb create-table") touch "$FAKE_STATE/table-$(arg --table-name "$@")" ;;
  "dynamodb describe-time-to-live") [ -e "$FAKE_STATE/ttl-$(arg --table-name "$@")" ] && echo ENABLED ;;
  "dynamodb update-time-to-live") touch "$FAKE_STATE/ttl-$(arg --table-name "$@")" ;;
esac
`

// runInitSh runs the hook against the fake in state (a directory kept
// between runs) and returns the calls it made.
func runInitSh(t *testing.T, state string, extraEnv ...string) []awsCall {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "awslocal"), []byte(fakeAWSLocal), 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "calls")
	cmd := exec.CommandContext(t.Context(), bash, filepath.Join(repoRoot(t), initSh))
	cmd.Env = append([]string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "FAKE_LOG=" + log, "FAKE_STATE=" + state}, extraEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", initSh, err, out)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var calls []awsCall
	var cur awsCall
	for f := range strings.SplitSeq(strings.TrimSuffix(string(b), "\x00"), "\x00") {
		if f == "\x1e" {
			calls = append(calls, cur)
			cur = nil
			continue
		}
		cur = append(cur, f)
	}
	return calls
}

// jsonFlag decodes the JSON argument of flag name.
func jsonFlag(t *testing.T, c awsCall, name string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(c.flag(name)), &m); err != nil {
		t.Fatalf("%s %s: not JSON: %v\n%s", c.op(), name, err, c.flag(name))
	}
	return m
}

// TestInitShMakesWhatProvisionMakes runs the hook against a stand-in for
// awslocal and holds what it asks for to pkg/provision and pkg/dynamodb:
// the queues with their visibility timeouts and redrive policies, the
// tables' key schemas, the ingest policy and the bucket notification. Then
// it runs the hook again and checks that it creates nothing twice.
func TestInitShMakesWhatProvisionMakes(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	calls := runInitSh(t, state)

	const bucket, prefix = "sluice-data", "sluice-"
	var created []string
	attrs := map[string]map[string]any{}
	var tables []tableSpec
	var notification, sesIdentity string
	ttl := map[string]string{}
	for _, c := range calls {
		switch c.op() {
		case "dynamodb update-time-to-live":
			ttl[c.flag("--table-name")] = c.flag("--time-to-live-specification")
		case "s3api create-bucket":
			created = append(created, "bucket "+c.flag("--bucket"))
		case "sqs create-queue":
			created = append(created, "queue "+c.flag("--queue-name"))
		case "sqs set-queue-attributes":
			name := c.flag("--queue-url")[strings.LastIndex(c.flag("--queue-url"), "/")+1:]
			if attrs[name] == nil {
				attrs[name] = map[string]any{}
			}
			for k, v := range jsonFlag(t, c, "--attributes") {
				attrs[name][k] = v
			}
		case "dynamodb create-table":
			created = append(created, "table "+c.flag("--table-name"))
			tables = append(tables, cliTable(t, c))
		case "s3api put-bucket-notification-configuration":
			if c.flag("--bucket") != bucket {
				t.Errorf("notification on %q, want %s", c.flag("--bucket"), bucket)
			}
			notification = c.flag("--notification-configuration")
		case "ses verify-email-identity":
			sesIdentity = c.flag("--email-address")
		}
	}

	// Queues: the four of pkg/provision, each with its -dlq.
	var wantQueues []string
	for _, st := range pipeline.Topology {
		name, vis := prefix+st.Queue, st.Visibility
		wantQueues = append(wantQueues, "queue "+name, "queue "+name+"-dlq")
		a := attrs[name]
		if got := a["VisibilityTimeout"]; got != strconv.Itoa(int(vis.Seconds())) {
			t.Errorf("%s: VisibilityTimeout %v, want %d (pipeline.Topology)", name, got, int(vis.Seconds()))
		}
		var redrive struct{ DeadLetterTargetArn, MaxReceiveCount string }
		rp, _ := a["RedrivePolicy"].(string)
		if err := json.Unmarshal([]byte(rp), &redrive); err != nil {
			t.Errorf("%s: RedrivePolicy %q: %v", name, rp, err)
		}
		// 5 is the default of sluice provision --max-receive and sqs.Ensure.
		if !strings.HasSuffix(redrive.DeadLetterTargetArn, ":"+name+"-dlq") || redrive.MaxReceiveCount != "5" {
			t.Errorf("%s: redrive %+v, want %s-dlq after 5 receives", name, redrive, name)
		}
		if got := attrs[name+"-dlq"]["MessageRetentionPeriod"]; got != "1209600" {
			t.Errorf("%s-dlq: MessageRetentionPeriod %v, want 14 days as pkg/sqs.Ensure", name, got)
		}
	}

	// Tables: the same names and key schemas as CreateTables.
	want := goTables(t, prefix)
	slices.SortFunc(tables, func(a, b tableSpec) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(want, func(a, b tableSpec) int { return strings.Compare(a.Name, b.Name) })
	if !slices.EqualFunc(tables, want, tableSpec.equal) {
		t.Errorf("init.sh tables\n%+v\npkg/dynamodb CreateTables\n%+v", tables, want)
	}

	// TTL as sluice provision turns it on.
	for _, tb := range []string{prefix + "batches", prefix + "rejects"} {
		if ttl[tb] != "Enabled=true,AttributeName=expiresAt" {
			t.Errorf("TTL on %s: %q, want Enabled=true,AttributeName=expiresAt", tb, ttl[tb])
		}
	}

	wantCreated := append([]string{"bucket " + bucket}, wantQueues...)
	for _, tb := range want {
		wantCreated = append(wantCreated, "table "+tb.Name)
	}
	slices.Sort(created)
	slices.Sort(wantCreated)
	if !slices.Equal(created, wantCreated) {
		t.Errorf("created\n%q\nwant\n%q", created, wantCreated)
	}

	// S3 may send to ingest, for this bucket only.
	var policy struct {
		Statement []struct {
			Effect    string
			Principal struct{ Service string }
			Action    string
			Resource  string
			Condition struct {
				ArnLike map[string]string
			}
		}
	}
	pol, _ := attrs[prefix+"ingest"]["Policy"].(string)
	if err := json.Unmarshal([]byte(pol), &policy); err != nil || len(policy.Statement) != 1 {
		t.Fatalf("ingest Policy %q: %v", pol, err)
	}
	st := policy.Statement[0]
	if st.Effect != "Allow" || st.Principal.Service != "s3.amazonaws.com" || st.Action != "sqs:SendMessage" ||
		!strings.HasSuffix(st.Resource, ":"+prefix+"ingest") || st.Condition.ArnLike["aws:SourceArn"] != "arn:aws:s3:::"+bucket {
		t.Errorf("ingest policy %+v", st)
	}

	var nc struct {
		QueueConfigurations []struct {
			QueueArn string
			Events   []string
			Filter   struct {
				Key struct {
					FilterRules []struct{ Name, Value string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(notification), &nc); err != nil || len(nc.QueueConfigurations) != 2 {
		t.Fatalf("notification %q: %v (want input/* and reference/*.csv, as provision makes)", notification, err)
	}
	refRules := map[string]string{}
	for _, r := range nc.QueueConfigurations[1].Filter.Key.FilterRules {
		refRules[strings.ToLower(r.Name)] = r.Value
	}
	if refRules["prefix"] != "reference/" || refRules["suffix"] != ".csv" || !strings.HasSuffix(nc.QueueConfigurations[1].QueueArn, ":"+prefix+"ingest") {
		t.Errorf("second notification %+v, want reference/*.csv to %singest", nc.QueueConfigurations[1], prefix)
	}
	qc := nc.QueueConfigurations[0]
	rules := map[string]string{}
	for _, r := range qc.Filter.Key.FilterRules {
		rules[strings.ToLower(r.Name)] = r.Value
	}
	if !strings.HasSuffix(qc.QueueArn, ":"+prefix+"ingest") || !slices.Equal(qc.Events, []string{"s3:ObjectCreated:*"}) ||
		rules["prefix"] != "input/" || rules["suffix"] != "" {
		t.Errorf("notification %+v, want s3:ObjectCreated:* on every key under input/ to %singest", qc, prefix)
	}
	if sesIdentity != env(loadCompose(t).Services["notifier"], "SLUICE_MAIL_FROM") {
		t.Errorf("SES identity %q is not the notifier's SLUICE_MAIL_FROM", sesIdentity)
	}

	// Again, on what is there: nothing is created twice.
	for _, c := range runInitSh(t, state) {
		if op := c[min(1, len(c)-1)]; strings.HasPrefix(op, "create-") || op == "update-time-to-live" {
			t.Errorf("second run: %s %s", c.op(), strings.Join(c[2:], " "))
		}
	}
}

// TestInitShFollowsTheEnvironment: other prefixes and bucket, as the
// compose file passes them.
func TestInitShFollowsTheEnvironment(t *testing.T) {
	t.Parallel()
	calls := runInitSh(t, t.TempDir(), "SLUICE_BUCKET=b2", "SLUICE_QUEUE_PREFIX=q-", "SLUICE_TABLE_PREFIX=t-", "AWS_DEFAULT_REGION=eu-west-1")
	var names []string
	for _, c := range calls {
		switch c.op() {
		case "s3api create-bucket":
			names = append(names, c.flag("--bucket"))
			if !strings.Contains(c.flag("--create-bucket-configuration"), "eu-west-1") {
				t.Errorf("bucket outside us-east-1 without a LocationConstraint: %q", c)
			}
		case "sqs create-queue":
			names = append(names, c.flag("--queue-name"))
		case "dynamodb create-table":
			names = append(names, c.flag("--table-name"))
		}
	}
	for _, n := range names {
		if n != "b2" && !strings.HasPrefix(n, "q-") && !strings.HasPrefix(n, "t-") {
			t.Errorf("created %q, ignoring the environment", n)
		}
	}
	if want := 1 + 2*len(pipeline.Topology) + 3; len(names) != want {
		t.Errorf("created %q, want a bucket, %d queues and 3 tables", names, 2*len(pipeline.Topology))
	}
}

// tableSpec is a table's name and keys: "id S HASH", "line N RANGE".
type tableSpec struct {
	Name, Billing string
	Keys          []string
	Indexes       []string // "unfinished openState HASH KEYS_ONLY"
}

func (a tableSpec) equal(b tableSpec) bool {
	return a.Name == b.Name && a.Billing == b.Billing && slices.Equal(a.Keys, b.Keys) && slices.Equal(a.Indexes, b.Indexes)
}

// gsi is a global secondary index as the API and the CLI's JSON spell it.
type gsi struct {
	IndexName  string
	KeySchema  []struct{ AttributeName, KeyType string }
	Projection struct{ ProjectionType string }
}

func indexSpecs(idx []gsi) []string {
	var out []string
	for _, g := range idx {
		s := g.IndexName
		for _, k := range g.KeySchema {
			s += " " + k.AttributeName + " " + k.KeyType
		}
		out = append(out, s+" "+g.Projection.ProjectionType)
	}
	return out
}

// cliTable reads an `aws dynamodb create-table` call in shorthand syntax.
func cliTable(t *testing.T, c awsCall) tableSpec {
	t.Helper()
	types := map[string]string{}
	var keys []string
	// Shorthand values follow their flag until the next flag.
	section := ""
	for _, a := range c {
		if strings.HasPrefix(a, "--") {
			section = a
			continue
		}
		kv := map[string]string{}
		for p := range strings.SplitSeq(a, ",") {
			k, v, _ := strings.Cut(p, "=")
			kv[k] = v
		}
		switch section {
		case "--attribute-definitions":
			types[kv["AttributeName"]] = kv["AttributeType"]
		case "--key-schema":
			keys = append(keys, kv["AttributeName"]+" "+kv["KeyType"])
		}
	}
	for i, k := range keys {
		name, kt, _ := strings.Cut(k, " ")
		keys[i] = name + " " + types[name] + " " + kt
	}
	var idx []gsi
	if v := c.flag("--global-secondary-indexes"); v != "" {
		if err := json.Unmarshal([]byte(v), &idx); err != nil {
			t.Fatalf("--global-secondary-indexes %q: %v", v, err)
		}
	}
	return tableSpec{Name: c.flag("--table-name"), Billing: c.flag("--billing-mode"), Keys: keys, Indexes: indexSpecs(idx)}
}

// goTables runs pkg/dynamodb's CreateTables against a stand-in DynamoDB
// and returns what it asked for.
func goTables(t *testing.T, prefix string) []tableSpec {
	t.Helper()
	var mu sync.Mutex
	var specs []tableSpec
	indexes := map[string][]gsi{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var in struct {
			TableName              string
			BillingMode            string
			AttributeDefinitions   []struct{ AttributeName, AttributeType string }
			KeySchema              []struct{ AttributeName, KeyType string }
			GlobalSecondaryIndexes []gsi
		}
		if err := json.Unmarshal(body, &in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		switch op := r.Header.Get("X-Amz-Target"); op {
		case "DynamoDB_20120810.CreateTable":
			types := map[string]string{}
			for _, d := range in.AttributeDefinitions {
				types[d.AttributeName] = d.AttributeType
			}
			s := tableSpec{Name: in.TableName, Billing: in.BillingMode, Indexes: indexSpecs(in.GlobalSecondaryIndexes)}
			for _, k := range in.KeySchema {
				s.Keys = append(s.Keys, k.AttributeName+" "+types[k.AttributeName]+" "+k.KeyType)
			}
			mu.Lock()
			specs = append(specs, s)
			indexes[in.TableName] = in.GlobalSecondaryIndexes
			mu.Unlock()
			json.NewEncoder(w).Encode(map[string]any{"TableDescription": map[string]any{"TableName": in.TableName, "TableStatus": "ACTIVE"}})
		case "DynamoDB_20120810.DescribeTable":
			mu.Lock()
			idx := indexes[in.TableName]
			mu.Unlock()
			json.NewEncoder(w).Encode(map[string]any{"Table": map[string]any{"TableName": in.TableName, "TableStatus": "ACTIVE", "GlobalSecondaryIndexes": idx}})
		default:
			http.Error(w, "unexpected "+op, http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	cfg := aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(srv.URL),
	}
	if err := dynamoledger.New(cfg, dynamoledger.DefaultTables(prefix)).CreateTables(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(specs) != 3 {
		t.Fatalf("CreateTables made %d tables, want 3", len(specs))
	}
	return specs
}
