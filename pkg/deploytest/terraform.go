package deploytest

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Stage is what one service may touch: the wiring the Terraform must give
// it, and nothing more. Queue and table names are the Terraform resource
// names (aws_sqs_queue.chunks); object patterns follow the bucket ARN.
type Stage struct {
	Name       string
	Queue      string              // the queue it reads; its DLQ is Queue+"_dlq"
	Visibility float64             // that queue's visibility timeout, seconds
	SendsTo    []string            // queues it sends to
	Tables     map[string][]string // table -> DynamoDB actions
	Read       []string            // object patterns it reads (s3:GetObject)
	Write      []string            // object patterns it writes (s3:PutObject, s3:AbortMultipartUpload)
	Delete     []string            // object patterns it deletes
	ListBucket bool                // needs 404 rather than 403 for a missing key
	Protect    bool                // ECS task scale-in protection of its own tasks
	Mail       bool                // ses:SendEmail
	// Sinks: the partners' resources the delivery sinks reach, named only
	// by the delivery_* variables (var.delivery_s3_object_arns etc.).
	Sinks bool
}

// Stages are the five services as pkg/pipeline and pkg/service use AWS.
var Stages = []Stage{
	{
		Name: "splitter", Queue: "ingest", Visibility: 300,
		SendsTo: []string{"chunks", "merge", "notify", "ingest"}, // ingest: a huge input's scan ranges
		Tables: map[string][]string{
			"batches": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Scan"},
			// It loads a CSV put under reference/ as the new version.
			"reference": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:Scan"}, // Scan: collecting old versions
		},
		Read:       []string{"input/*", "input_archive/*", "reference/*", "*/to_process/*"}, // a retried split reads the archived copy; the stitch, the scan summaries
		Delete:     []string{"input/*"},
		Write:      []string{"*/to_process/*", "input_archive/*"},
		ListBucket: true,
	},
	{
		Name: "worker", Queue: "chunks", Visibility: 120,
		SendsTo: []string{"merge", "notify"}, // notify: a dead chunk fails its batch
		Tables: map[string][]string{
			"batches":   {"dynamodb:GetItem", "dynamodb:UpdateItem"},
			"rejects":   {"dynamodb:BatchWriteItem"}, // AddRejects: BatchWriteItem only
			"reference": {"dynamodb:GetItem", "dynamodb:BatchGetItem"},
		},
		Read:       []string{"*/to_process/*", "input_archive/*"}, // a chunk is a range of the archived input
		Write:      []string{"*/output/parts/*", "*/output/errors/*"},
		ListBucket: true,
		Protect:    true,
	},
	{
		Name: "merger", Queue: "merge", Visibility: 300,
		SendsTo: []string{"notify", "deliveries"},
		Tables:  map[string][]string{"batches": {"dynamodb:GetItem", "dynamodb:UpdateItem"}},
		Read:    []string{"*/output/parts/*", "*/output/errors/*"},
		Write:   []string{"*/output/completed/*"},
	},
	{
		Name: "notifier", Queue: "notify", Visibility: 60,
		Tables: map[string][]string{
			"batches":                  {"dynamodb:GetItem", "dynamodb:UpdateItem"},
			"batches/index/unfinished": {"dynamodb:Query"}, // CountByState
		},
		Read: []string{"*/output/completed/*", "input_archive/*"},
		// A batch's intermediates go when it ends (retention.intermediates).
		Delete:     []string{"*/to_process/*", "*/output/parts/*", "*/output/errors/*"},
		ListBucket: true,
		Mail:       true,
	},
	{
		// Partners' buckets, queues and roles come from the delivery_*
		// variables (Sinks), in statements made only when they are set.
		Name: "deliverer", Queue: "deliveries", Visibility: 120, Sinks: true,
		Tables: map[string][]string{"batches": {"dynamodb:GetItem", "dynamodb:UpdateItem"}},
		Read:   []string{"*/output/completed/*"}, // the manifest, presigned links, the s3 sink's copy source
	},
}

// Resource names in the grants CheckTerraform compares.
const (
	allQueues = "queues:PREFIX*" // local.all_queues_arn: GetQueueUrl only
	ownTasks  = "ecs:own-tasks"  // local.worker_tasks
	sesIDs    = "ses:identities" // local.ses_identities
	bucket    = "s3:bucket"      // aws_s3_bucket.this.arn
	objects   = "s3:"            // + pattern
	queueRes  = "sqs:"           // + queue resource name
	tableRes  = "dynamodb:"      // + table resource name

	sinkObjects = "sink:s3-objects" // var.delivery_s3_object_arns
	sinkQueues  = "sink:queues"     // var.delivery_queue_arns
	sinkRoles   = "sink:roles"      // var.delivery_role_arns
)

// CheckTerraform returns every way the module's wiring differs from
// Stages; none means it is right.
func CheckTerraform(m *Module) []string {
	var p problems
	checkVersions(m, &p)
	checkQueues(m, &p)
	checkTables(m, &p)
	checkBucket(m, &p)
	checkCluster(m, &p)
	for _, s := range Stages {
		checkService(m, s, &p)
		checkScaling(m, s, &p)
		checkRole(m, s, &p)
	}
	return p
}

type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// --- queues and tables ----------------------------------------------------------

func checkQueues(m *Module, p *problems) {
	queues := m.Resources("aws_sqs_queue")
	maxReceive := ""
	if v := m.Block("variable", "max_receive_count"); v != nil {
		if n, ok := number(attr(v, "default")); ok {
			maxReceive = fmt.Sprint(n)
		}
	}
	for _, s := range Stages {
		q, dlq := queues[s.Queue], queues[s.Queue+"_dlq"]
		if q == nil || dlq == nil {
			p.add("queue %s: want aws_sqs_queue.%s and aws_sqs_queue.%s_dlq", s.Queue, s.Queue, s.Queue)
			continue
		}
		if !strings.HasSuffix(sourceName(attr(q, "name")), s.Queue) || !strings.HasSuffix(sourceName(attr(dlq, "name")), s.Queue+"-dlq") {
			p.add("queue %s: names must be PREFIX+%s and PREFIX+%s-dlq, as the services derive them", s.Queue, s.Queue, s.Queue)
		}
		if n, ok := number(attr(q, "visibility_timeout_seconds")); !ok || n != s.Visibility {
			p.add("queue %s: visibility_timeout_seconds must be %v", s.Queue, s.Visibility)
		}
		rp := attr(q, "redrive_policy")
		if rp == nil {
			p.add("queue %s: no redrive_policy to its dead-letter queue", s.Queue)
			continue
		}
		targets := objectKeys(rp, "deadLetterTargetArn")
		if len(targets) != 1 || !refersTo(targets[0], "aws_sqs_queue."+s.Queue+"_dlq") {
			p.add("queue %s: redrive_policy must send to aws_sqs_queue.%s_dlq", s.Queue, s.Queue)
		}
		counts := objectKeys(rp, "maxReceiveCount")
		ok := len(counts) == 1
		if ok {
			n, lit := number(counts[0])
			ok = (lit && n == 5) || (refersTo(counts[0], "var.max_receive_count") && maxReceive == "5")
		}
		if !ok {
			p.add("queue %s: redrive_policy maxReceiveCount must be 5 (literal or var.max_receive_count defaulting to 5)", s.Queue)
		}
	}
}

// sourceName renders a name template's literal tail: "${var.name_prefix}chunks" -> "chunks".
func sourceName(e hclsyntax.Expression) string {
	if _, rest, ok := templateParts(e); ok {
		return rest
	}
	return str(e)
}

func checkTables(m *Module, p *problems) {
	want := map[string][][2]string{
		"batches":   {{"id", "S"}},
		"rejects":   {{"batchId", "S"}, {"line", "N"}},
		"reference": {{"pk", "S"}},
	}
	tables := m.Resources("aws_dynamodb_table")
	for _, name := range sortedKeys(want) {
		t := tables[name]
		if t == nil {
			p.add("table %s: no aws_dynamodb_table.%s", name, name)
			continue
		}
		if str(attr(t, "billing_mode")) != "PAY_PER_REQUEST" {
			p.add("table %s: billing_mode must be PAY_PER_REQUEST", name)
		}
		keys := want[name]
		if str(attr(t, "hash_key")) != keys[0][0] {
			p.add("table %s: hash_key must be %s", name, keys[0][0])
		}
		rangeKey := ""
		if len(keys) > 1 {
			rangeKey = keys[1][0]
		}
		if str(attr(t, "range_key")) != rangeKey {
			p.add("table %s: range_key must be %q", name, rangeKey)
		}
		types := map[string]string{}
		for _, a := range children(t, "attribute") {
			types[str(attr(a, "name"))] = str(attr(a, "type"))
		}
		for _, k := range keys {
			if types[k[0]] != k[1] {
				p.add("table %s: attribute %s must be of type %s", name, k[0], k[1])
			}
		}
		// The README promises point-in-time recovery on every table.
		if !refersTo(attr(child(t, "point_in_time_recovery"), "enabled"), "var.protect_data") {
			p.add("table %s: point_in_time_recovery must be enabled = var.protect_data", name)
		}
		// pkg/dynamoledger writes expiresAt on batch and reject items.
		if ttl := child(t, "ttl"); name != "reference" && (str(attr(ttl, "attribute_name")) != "expiresAt" || !isTrue(attr(ttl, "enabled"))) {
			p.add("table %s: ttl must be enabled on attribute_name expiresAt", name)
		}
	}
	// CountByState's sparse index (pkg/dynamoledger).
	gsi := child(tables["batches"], "global_secondary_index")
	if str(attr(gsi, "name")) != "unfinished" || str(attr(gsi, "hash_key")) != "openState" || str(attr(gsi, "projection_type")) != "KEYS_ONLY" {
		p.add("table batches: needs global_secondary_index unfinished on hash_key openState, projection_type KEYS_ONLY")
	}
}

// checkVersions holds required_version to the oldest Terraform that can
// run tests/plan.tftest.hcl (override_during arrived in 1.11).
func checkVersions(m *Module, p *problems) {
	tf := m.Block("terraform")
	v := str(attr(tf, "required_version"))
	var major, minor int
	if _, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(v, ">=")), "%d.%d", &major, &minor); err != nil ||
		!strings.HasPrefix(v, ">=") || major != 1 || minor < 11 {
		p.add("terraform: required_version %q must be \">= 1.11\" or later (the tests use override_during)", v)
	}
}

// --- bucket --------------------------------------------------------------------------

// forBucket returns the resources of typ whose bucket is aws_s3_bucket.this.
func forBucket(m *Module, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, name := range sortedKeys(m.Resources(typ)) {
		b := m.Resources(typ)[name]
		if refersTo(attr(b, "bucket"), "aws_s3_bucket.this") {
			out = append(out, b)
		}
	}
	return out
}

func checkBucket(m *Module, p *problems) {
	if m.Block("resource", "aws_s3_bucket", "this") == nil {
		p.add("bucket: no aws_s3_bucket.this")
		return
	}

	encrypted := false
	for _, b := range forBucket(m, "aws_s3_bucket_server_side_encryption_configuration") {
		alg := str(attr(path(b, "rule", "apply_server_side_encryption_by_default"), "sse_algorithm"))
		encrypted = encrypted || slices.Contains([]string{"AES256", "aws:kms", "aws:kms:dsse"}, alg)
	}
	if !encrypted {
		p.add("bucket: no aws_s3_bucket_server_side_encryption_configuration with a default sse_algorithm")
	}

	pab := forBucket(m, "aws_s3_bucket_public_access_block")
	if len(pab) == 0 {
		p.add("bucket: no aws_s3_bucket_public_access_block")
	}
	for _, b := range pab {
		for _, f := range []string{"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"} {
			if !isTrue(attr(b, f)) {
				p.add("bucket: public access block %s must be true", f)
			}
		}
	}
	checkBucketTLS(m, p)
	checkLifecycle(m, p)
	checkIngestNotification(m, p)
	checkIngestQueuePolicy(m, p)
}

// checkBucketTLS: the bucket policy denies any request not made over TLS.
func checkBucketTLS(m *Module, p *problems) {
	tlsOnly := false
	for _, b := range forBucket(m, "aws_s3_bucket_policy") {
		for _, name := range dataDocs(attr(b, "policy")) {
			for _, st := range children(m.Block("data", "aws_iam_policy_document", name), "statement") {
				if str(attr(st, "effect")) != "Deny" {
					continue
				}
				for _, c := range children(st, "condition") {
					vals, _ := strs(attr(c, "values"))
					if str(attr(c, "test")) == "Bool" && str(attr(c, "variable")) == "aws:SecureTransport" && slices.Equal(vals, []string{"false"}) {
						tlsOnly = true
					}
				}
			}
		}
	}
	if !tlsOnly {
		p.add("bucket: its policy must Deny requests with aws:SecureTransport false")
	}
}

// checkIngestNotification: any object created under input/ (a CSV, a
// compressed CSV, a workbook) is announced on the ingest queue, which is
// how a batch starts.
func checkIngestNotification(m *Module, p *problems) {
	notified := false
	for _, b := range forBucket(m, "aws_s3_bucket_notification") {
		for _, q := range children(b, "queue") {
			events, _ := strs(attr(q, "events"))
			if refersTo(attr(q, "queue_arn"), "aws_sqs_queue.ingest") && slices.Contains(events, "s3:ObjectCreated:*") &&
				str(attr(q, "filter_prefix")) == "input/" && attr(q, "filter_suffix") == nil {
				notified = true
			}
		}
	}
	if !notified {
		p.add("bucket: no aws_s3_bucket_notification sending s3:ObjectCreated:* on every key under input/ (no suffix filter: .csv.gz and .xlsx are inputs too) to aws_sqs_queue.ingest")
	}

}

// checkIngestQueuePolicy: the ingest queue lets S3 send to it, but only on
// behalf of our bucket.
func checkIngestQueuePolicy(m *Module, p *problems) {
	allowed := false
	for _, qp := range m.Resources("aws_sqs_queue_policy") {
		if !refersTo(attr(qp, "queue_url"), "aws_sqs_queue.ingest") {
			continue
		}
		for _, name := range dataDocs(attr(qp, "policy")) {
			for _, st := range children(m.Block("data", "aws_iam_policy_document", name), "statement") {
				pr := child(st, "principals")
				ids, _ := strs(attr(pr, "identifiers"))
				actions, _ := strs(attr(st, "actions"))
				scoped := false
				for _, c := range children(st, "condition") {
					if str(attr(c, "variable")) == "aws:SourceArn" && refersTo(attr(c, "values"), "aws_s3_bucket.this") {
						scoped = true
					}
				}
				if slices.Contains(ids, "s3.amazonaws.com") && slices.Contains(actions, "sqs:SendMessage") &&
					refersTo(attr(st, "resources"), "aws_sqs_queue.ingest") && scoped {
					allowed = true
				}
			}
		}
	}
	if !allowed {
		p.add("ingest queue: its policy must let s3.amazonaws.com SendMessage, scoped by aws:SourceArn to aws_s3_bucket.this")
	}
}

// checkLifecycle: killed uploads are aborted, and inputs never split,
// archives and fixed-prefix intermediates expire as var.retention says.
func checkLifecycle(m *Module, p *problems) {
	want := map[string]string{
		"input/":         "var.retention.orphaned_input_days",
		"input_archive/": "var.retention.archive_days",
	}
	found := map[string]bool{}
	aborts := false
	for _, b := range forBucket(m, "aws_s3_bucket_lifecycle_configuration") {
		for _, r := range children(b, "rule") {
			if child(r, "abort_incomplete_multipart_upload") != nil {
				aborts = true
			}
			prefix := str(attr(child(r, "filter"), "prefix"))
			if v, ok := want[prefix]; ok && refersTo(attr(child(r, "expiration"), "days"), v) {
				found[prefix] = true
			}
		}
	}
	if !aborts {
		p.add("bucket: no lifecycle rule aborts incomplete multipart uploads")
	}
	for _, prefix := range sortedKeys(want) {
		if !found[prefix] {
			p.add("bucket: no lifecycle rule expires %s after %s days", prefix, want[prefix])
		}
	}
}

// dataDocs are the aws_iam_policy_document data sources expr references.
func dataDocs(expr hclsyntax.Expression) []string {
	seen := map[string]bool{}
	for _, r := range refs(expr) {
		if rest, ok := strings.CutPrefix(r, "data.aws_iam_policy_document."); ok {
			name, _, _ := strings.Cut(rest, ".")
			seen[name] = true
		}
	}
	return sortedKeys(seen)
}

// --- ECS ---------------------------------------------------------------------------------

func checkCluster(m *Module, p *problems) {
	c := m.Block("resource", "aws_ecs_cluster", "this")
	if c == nil {
		p.add("cluster: no aws_ecs_cluster.this")
		return
	}
	insights := false
	for _, s := range children(c, "setting") {
		if str(attr(s, "name")) == "containerInsights" && slices.Contains([]string{"enabled", "enhanced"}, str(attr(s, "value"))) {
			insights = true
		}
	}
	if !insights {
		p.add("cluster: Container Insights must be on (RunningTaskCount is the scaling metric's denominator)")
	}

	// The container settings every task definition shares.
	c9090 := false
	for _, e := range objectKeys(m.Local("container"), "containerPort") {
		if n, ok := number(e); ok && n == 9090 {
			c9090 = true
		}
	}
	if !c9090 {
		p.add("containers: containerPort must be 9090 (SLUICE_HTTP_ADDR)")
	}
	stop := objectKeys(m.Local("container"), "stopTimeout")
	if len(stop) != 1 || !refersTo(stop[0], "var.stop_timeout") {
		p.add("containers: stopTimeout must be var.stop_timeout")
	}
	drain := objectKeys(m.Local("common_env"), "SLUICE_DRAIN")
	if len(drain) != 1 || !refersTo(drain[0], "var.stop_timeout") {
		p.add("containers: SLUICE_DRAIN must be derived from var.stop_timeout")
	}
	logs := false
	for _, e := range objectKeys(m.Local("container"), "logDriver") {
		logs = logs || str(e) == "awslogs"
	}
	if !logs {
		p.add("containers: logDriver must be awslogs")
	}
	if v := m.Block("variable", "stop_timeout"); v == nil {
		p.add("variable stop_timeout is missing")
	} else {
		capped := false
		for _, val := range children(v, "validation") {
			cond := attr(val, "condition")
			if cond == nil {
				continue
			}
			hclsyntax.VisitAll(cond, func(n hclsyntax.Node) hcl.Diagnostics {
				if lit, ok := n.(*hclsyntax.LiteralValueExpr); ok {
					if f, ok := number(lit); ok && f == 120 {
						capped = true
					}
				}
				return nil
			})
		}
		if !capped {
			p.add("variable stop_timeout: a validation must cap it at 120 (the Fargate maximum)")
		}
	}
}

func checkService(m *Module, s Stage, p *problems) {
	svc := m.Block("resource", "aws_ecs_service", s.Name)
	td := m.Block("resource", "aws_ecs_task_definition", s.Name)
	if svc == nil {
		p.add("%s: no aws_ecs_service.%s", s.Name, s.Name)
	}
	if td == nil {
		p.add("%s: no aws_ecs_task_definition.%s", s.Name, s.Name)
	}
	if svc == nil || td == nil {
		return
	}
	if !refersTo(attr(svc, "task_definition"), "aws_ecs_task_definition."+s.Name) {
		p.add("%s: the service must run aws_ecs_task_definition.%s", s.Name, s.Name)
	}
	if !refersTo(attr(svc, "cluster"), "aws_ecs_cluster.this") {
		p.add("%s: the service must be in aws_ecs_cluster.this", s.Name)
	}
	if str(attr(svc, "launch_type")) != "FARGATE" {
		p.add("%s: launch_type must be FARGATE", s.Name)
	}
	ignored := false
	for _, r := range refs(attr(child(svc, "lifecycle"), "ignore_changes")) {
		ignored = ignored || r == "desired_count"
	}
	if !ignored {
		p.add("%s: lifecycle must ignore desired_count, which autoscaling owns", s.Name)
	}
	if !refersTo(attr(td, "task_role_arn"), "aws_iam_role."+s.Name) {
		p.add("%s: task_role_arn must be aws_iam_role.%s", s.Name, s.Name)
	}
	if !refersTo(attr(td, "execution_role_arn"), "aws_iam_role.execution") {
		p.add("%s: execution_role_arn must be aws_iam_role.execution", s.Name)
	}
	if !refersTo(attr(td, "container_definitions"), fmt.Sprintf("local.container[%q]", s.Name)) {
		p.add("%s: container_definitions must be local.container[%q]", s.Name, s.Name)
	}
	caps, _ := strs(attr(td, "requires_compatibilities"))
	if !slices.Contains(caps, "FARGATE") || str(attr(td, "network_mode")) != "awsvpc" {
		p.add("%s: the task definition must be FARGATE with network_mode awsvpc", s.Name)
	}
}

// --- autoscaling ----------------------------------------------------------------------

var (
	mathID   = regexp.MustCompile(`\b[a-z][a-zA-Z0-9_]*\b`)
	guarded  = regexp.MustCompile(`/\s*IF\s*\(`)
	queueRef = "aws_sqs_queue."
)

func checkScaling(m *Module, s Stage, p *problems) {
	target := checkScalableTarget(m, s, p)
	if target == "" {
		return
	}
	tt := checkTrackingPolicy(m, s, target, p)
	if tt == nil {
		return
	}
	checkBacklogPerTask(s, readPolicyMetrics(m, s, tt, p), p)
}

// checkScalableTarget: one scalable target on the stage's ECS service,
// bounded by the stage's variables. It returns its name, "" if none.
func checkScalableTarget(m *Module, s Stage, p *problems) string {
	var targets []string
	for name, t := range m.Resources("aws_appautoscaling_target") {
		if refersTo(attr(t, "resource_id"), "aws_ecs_service."+s.Name) {
			targets = append(targets, name)
		}
	}
	if len(targets) != 1 {
		p.add("%s: want one aws_appautoscaling_target whose resource_id is aws_ecs_service.%s, have %d", s.Name, s.Name, len(targets))
		return ""
	}
	t := m.Block("resource", "aws_appautoscaling_target", targets[0])
	if str(attr(t, "service_namespace")) != "ecs" || str(attr(t, "scalable_dimension")) != "ecs:service:DesiredCount" {
		p.add("%s: the scalable target must be ecs / ecs:service:DesiredCount", s.Name)
	}
	for _, f := range []string{"min_capacity", "max_capacity"} {
		if !refersTo(attr(t, f), "var."+s.Name+"."+f) {
			p.add("%s: the scalable target's %s must be var.%s.%s", s.Name, f, s.Name, f)
		}
	}
	return targets[0]
}

// checkTrackingPolicy: one target-tracking policy on that target, aiming at
// the stage's backlog per task with the stage's cooldowns. It returns the
// policy's configuration block, nil if none.
func checkTrackingPolicy(m *Module, s Stage, target string, p *problems) *hclsyntax.Block {
	var policies []*hclsyntax.Block
	for _, name := range sortedKeys(m.Resources("aws_appautoscaling_policy")) {
		pol := m.Resources("aws_appautoscaling_policy")[name]
		if refersTo(attr(pol, "resource_id"), "aws_appautoscaling_target."+target) &&
			str(attr(pol, "policy_type")) == "TargetTrackingScaling" {
			policies = append(policies, pol)
		}
	}
	if len(policies) != 1 {
		p.add("%s: want one TargetTrackingScaling aws_appautoscaling_policy on aws_appautoscaling_target.%s, have %d", s.Name, target, len(policies))
		return nil
	}
	tt := child(policies[0], "target_tracking_scaling_policy_configuration")
	if !refersTo(attr(tt, "target_value"), fmt.Sprintf("local.target_backlog_per_task[%q]", s.Name)) {
		p.add("%s: target_value must be local.target_backlog_per_task[%q]", s.Name, s.Name)
	}
	for _, f := range []string{"scale_in_cooldown", "scale_out_cooldown"} {
		if !refersTo(attr(tt, f), "var."+s.Name+"."+f) {
			p.add("%s: %s must be var.%s.%s", s.Name, f, s.Name, f)
		}
	}
	return tt
}

type metric struct{ namespace, name string }

// policyMetrics is what a tracking policy's metric math reads: the metrics
// by id, the ids of the queue's visible messages and of the running tasks,
// and the expression it returns (with a local's value substituted).
type policyMetrics struct {
	ids                      map[string]metric
	visibleID, tasksID, expr string
	returned                 int
}

// readPolicyMetrics collects the policy's metrics, reporting any that read
// another stage's queue.
func readPolicyMetrics(m *Module, s Stage, tt *hclsyntax.Block, p *problems) policyMetrics {
	pm := policyMetrics{ids: map[string]metric{}}
	for _, mq := range children(child(tt, "customized_metric_specification"), "metrics") {
		id := str(attr(mq, "id"))
		if isTrue(attr(mq, "return_data")) {
			pm.returned++
			pm.expr = str(attr(mq, "expression"))
			for _, r := range refs(attr(mq, "expression")) {
				if name, ok := strings.CutPrefix(r, "local."); ok {
					pm.expr = str(m.Local(name))
				}
			}
		}
		mt := path(mq, "metric_stat", "metric")
		if mt == nil {
			continue
		}
		mm := metric{str(attr(mt, "namespace")), str(attr(mt, "metric_name"))}
		pm.ids[id] = mm
		dims := map[string]hclsyntax.Expression{}
		for _, d := range children(mt, "dimensions") {
			dims[str(attr(d, "name"))] = attr(d, "value")
		}
		for _, q := range referenced(dims["QueueName"], "aws_sqs_queue") {
			if q != s.Queue {
				p.add("%s: its scaling policy reads queue %s, not its own queue %s", s.Name, q, s.Queue)
			}
		}
		switch mm {
		case metric{"AWS/SQS", "ApproximateNumberOfMessagesVisible"}:
			if refersTo(dims["QueueName"], queueRef+s.Queue) {
				pm.visibleID = id
			}
		case metric{"ECS/ContainerInsights", "RunningTaskCount"}:
			if refersTo(dims["ServiceName"], "aws_ecs_service."+s.Name) && refersTo(dims["ClusterName"], "aws_ecs_cluster.this") {
				pm.tasksID = id
			}
		}
	}
	return pm
}

// checkBacklogPerTask: the policy returns one expression that divides the
// stage's visible messages by its running tasks, guarded against zero.
func checkBacklogPerTask(s Stage, pm policyMetrics, p *problems) {
	ids, visibleID, tasksID, expr, returned := pm.ids, pm.visibleID, pm.tasksID, pm.expr, pm.returned
	if visibleID == "" {
		p.add("%s: its scaling policy must read AWS/SQS ApproximateNumberOfMessagesVisible of aws_sqs_queue.%s", s.Name, s.Queue)
	}
	if tasksID == "" {
		p.add("%s: its scaling policy must read ECS/ContainerInsights RunningTaskCount of aws_ecs_service.%s", s.Name, s.Name)
	}
	if returned != 1 || expr == "" {
		p.add("%s: its scaling policy must return exactly one metric math expression", s.Name)
		return
	}
	used := map[string]bool{}
	for _, w := range mathID.FindAllString(expr, -1) {
		used[w] = true
		if _, ok := ids[w]; !ok {
			p.add("%s: expression %q uses %s, which no metric defines", s.Name, expr, w)
		}
	}
	if !used[visibleID] || !used[tasksID] || !guarded.MatchString(expr) {
		p.add("%s: expression %q must divide the backlog (%s) by running tasks (%s) guarded against zero, as \"... / IF(...)\"", s.Name, expr, visibleID, tasksID)
	}
}

// --- IAM ---------------------------------------------------------------------------------

// want lists the grants ("action resource") s must have, and only those.
func (s Stage) want() map[string]bool {
	w := map[string]bool{}
	grant := func(res string, actions ...string) {
		for _, a := range actions {
			w[a+" "+res] = true
		}
	}
	grant(queueRes+s.Queue, "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl")
	grant(queueRes+s.Queue+"_dlq", "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl")
	for _, q := range s.SendsTo {
		grant(queueRes+q, "sqs:SendMessage", "sqs:GetQueueUrl")
	}
	for t, actions := range s.Tables {
		grant(tableRes+t, actions...)
	}
	for _, o := range s.Read {
		grant(objects+o, "s3:GetObject")
	}
	for _, o := range s.Write {
		grant(objects+o, "s3:PutObject", "s3:AbortMultipartUpload")
	}
	for _, o := range s.Delete {
		grant(objects+o, "s3:DeleteObject")
	}
	if s.ListBucket {
		grant(bucket, "s3:ListBucket")
	}
	if s.Protect {
		grant(ownTasks, "ecs:GetTaskProtection", "ecs:UpdateTaskProtection")
	}
	if s.Mail {
		grant(sesIDs, "ses:SendEmail")
	}
	if s.Sinks {
		grant(sinkObjects, "s3:PutObject", "s3:AbortMultipartUpload")
		grant(sinkQueues, "sqs:SendMessage")
		grant(sinkRoles, "sts:AssumeRole")
	}
	return w
}

// resource names one IAM resource element, or "" if it is not one of the
// forms the policies use.
func resource(e hclsyntax.Expression) string {
	if ref, rest, ok := templateParts(e); ok {
		if ref == "aws_s3_bucket.this.arn" && strings.HasPrefix(rest, "/") {
			return objects + rest[1:]
		}
		// "${aws_dynamodb_table.batches.arn}/index/unfinished"
		parts := strings.Split(ref, ".")
		if len(parts) == 3 && parts[0] == "aws_dynamodb_table" && parts[2] == "arn" && strings.HasPrefix(rest, "/index/") {
			return tableRes + parts[1] + rest
		}
		return ""
	}
	st, ok := e.(*hclsyntax.ScopeTraversalExpr)
	if !ok {
		return ""
	}
	r := render(st.Traversal)
	switch {
	case r == "aws_s3_bucket.this.arn":
		return bucket
	case r == "local.all_queues_arn":
		return allQueues
	case r == "local.worker_tasks":
		return ownTasks
	case r == "local.ses_identities":
		return sesIDs
	case r == "var.delivery_s3_object_arns":
		return sinkObjects
	case r == "var.delivery_queue_arns":
		return sinkQueues
	case r == "var.delivery_role_arns":
		return sinkRoles
	}
	parts := strings.Split(r, ".")
	if len(parts) == 3 && parts[2] == "arn" {
		switch parts[0] {
		case "aws_sqs_queue":
			return queueRes + parts[1]
		case "aws_dynamodb_table":
			return tableRes + parts[1]
		}
	}
	return ""
}

func checkRole(m *Module, s Stage, p *problems) {
	role := m.Block("resource", "aws_iam_role", s.Name)
	if role == nil {
		p.add("%s: no aws_iam_role.%s", s.Name, s.Name)
		return
	}
	if !slices.Equal(dataDocs(attr(role, "assume_role_policy")), []string{"ecs_tasks_assume"}) {
		p.add("%s: its role must be assumed through data.aws_iam_policy_document.ecs_tasks_assume", s.Name)
	}
	// Exactly one policy on the role, from the document named after the
	// service, so nothing else can widen it.
	var attached []string
	for _, typ := range []string{"aws_iam_role_policy", "aws_iam_role_policy_attachment", "aws_iam_policy_attachment"} {
		for name, b := range m.Resources(typ) {
			if refersTo(attr(b, "role"), "aws_iam_role."+s.Name) || refersTo(attr(b, "roles"), "aws_iam_role."+s.Name) {
				attached = append(attached, typ+"."+name)
			}
		}
	}
	rp := m.Block("resource", "aws_iam_role_policy", s.Name)
	if len(attached) != 1 || rp == nil || !slices.Equal(dataDocs(attr(rp, "policy")), []string{s.Name}) {
		p.add("%s: its role must have exactly one policy, aws_iam_role_policy.%s from data.aws_iam_policy_document.%s (has %v)", s.Name, s.Name, s.Name, attached)
	}
	doc := m.Block("data", "aws_iam_policy_document", s.Name)
	if doc == nil {
		p.add("%s: no data.aws_iam_policy_document.%s", s.Name, s.Name)
		return
	}
	have := policyGrants(doc, s.Name, p)
	want := s.want()
	// resolve_all_queue_urls (off by default) lets a role also look up,
	// and only look up, any PREFIX* queue, for tools beyond the services.
	optional := map[string]bool{"sqs:GetQueueUrl " + allQueues: true}
	var extra, missing []string
	for g := range have {
		if !want[g] && !optional[g] {
			extra = append(extra, g)
		}
	}
	for g := range want {
		if !have[g] {
			missing = append(missing, g)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	for _, g := range extra {
		p.add("%s: its role grants %s, which is not its own to have", s.Name, g)
	}
	for _, g := range missing {
		p.add("%s: its role lacks %s", s.Name, g)
	}
}

// policyGrants lists a policy document's Allow grants as "action resource"
// (resources as resource names them), adding a problem for any statement
// it cannot read.
func policyGrants(doc *hclsyntax.Block, service string, p *problems) map[string]bool {
	have := map[string]bool{}
	for _, st := range children(doc, "statement") {
		if e := str(attr(st, "effect")); e != "" && e != "Allow" {
			continue // a Deny only narrows
		}
		if attr(st, "not_actions") != nil || attr(st, "not_resources") != nil {
			p.add("%s: statement %q uses not_actions or not_resources, which grant everything else", service, str(attr(st, "sid")))
			continue
		}
		actions, ok := strs(attr(st, "actions"))
		if !ok {
			p.add("%s: statement %q: actions must be a literal list", service, str(attr(st, "sid")))
			continue
		}
		res := attr(st, "resources")
		if res == nil {
			p.add("%s: statement %q has no resources", service, str(attr(st, "sid")))
			continue
		}
		for _, e := range items(res) {
			r := resource(e)
			if r == "" {
				p.add("%s: statement %q: resource %s is none of its queues, tables, prefixes or known ARNs", service, str(attr(st, "sid")), strings.Join(refs(e), ", "))
				continue
			}
			for _, a := range actions {
				have[a+" "+r] = true
			}
		}
	}
	return have
}
