package deploytest

import (
	"strings"
	"testing"
)

const terraformDir = "../../deploy/terraform"

func load(t *testing.T, edit func(files map[string][]byte)) *Module {
	t.Helper()
	files, err := ReadDir(terraformDir)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(files)
	}
	m, err := Parse(files)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return m
}

func TestTerraformParses(t *testing.T) {
	files, err := ReadDir(terraformDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"versions.tf", "variables.tf", "ecs.tf", "iam.tf", "sqs.tf", "dynamodb.tf", "s3.tf", "autoscaling.tf", "outputs.tf"} {
		if _, ok := files[want]; !ok {
			t.Errorf("deploy/terraform/%s is missing", want)
		}
	}
	for name, src := range files {
		if _, err := Parse(map[string][]byte{name: src}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestTerraformWiring(t *testing.T) {
	for _, p := range CheckTerraform(load(t, nil)) {
		t.Error(p)
	}
}

// The checks must catch the mistakes they exist for: each case breaks the
// real files in one way and expects a problem that names it.
func TestTerraformChecksCatch(t *testing.T) {
	replace := func(file, old, new string) func(*testing.T, map[string][]byte) {
		return func(t *testing.T, files map[string][]byte) {
			src := string(files[file])
			if !strings.Contains(src, old) {
				t.Fatalf("%s no longer contains %q: update this case", file, old)
			}
			files[file] = []byte(strings.ReplaceAll(src, old, new))
		}
	}
	cases := []struct {
		name   string
		text   func(*testing.T, map[string][]byte) // edits the source
		remove []string                            // or drops a parsed block
		attr   [3]string                           // or drops one attribute: type, name, attribute
		want   []string                            // a problem contains all of these
	}{
		{
			name:   "worker lost its scaling policy",
			remove: []string{"resource", "aws_appautoscaling_policy", "worker"},
			want:   []string{"worker:", "TargetTrackingScaling", "have 0"},
		},
		{
			name:   "worker lost its scalable target",
			remove: []string{"resource", "aws_appautoscaling_target", "worker"},
			want:   []string{"worker:", "aws_appautoscaling_target", "have 0"},
		},
		{
			name: "merger scales on the chunks queue",
			text: replace("autoscaling.tf", "aws_sqs_queue.merge.name", "aws_sqs_queue.chunks.name"),
			want: []string{"merger:", "reads queue chunks"},
		},
		{
			name: "backlog divided by running tasks unguarded",
			text: replace("autoscaling.tf", `/ IF(FILL(m2, 0) > 1, FILL(m2, 0), 1)`, `/ m2`),
			want: []string{"splitter:", "guarded against zero"},
		},
		{
			name: "notifier may send to the chunks queue",
			text: replace("iam.tf", "resources = [aws_sqs_queue.notify_dlq.arn]", "resources = [aws_sqs_queue.notify_dlq.arn, aws_sqs_queue.chunks.arn]"),
			want: []string{"notifier:", "sqs:SendMessage sqs:chunks", "not its own"},
		},
		{
			name: "worker may read the completed outputs",
			text: replace("iam.tf", `resources = ["${aws_s3_bucket.this.arn}/*/to_process/*", "${aws_s3_bucket.this.arn}/input_archive/*"]`, `resources = ["${aws_s3_bucket.this.arn}/*/to_process/*", "${aws_s3_bucket.this.arn}/input_archive/*", "${aws_s3_bucket.this.arn}/*/output/completed/*"]`),
			want: []string{"worker:", "s3:GetObject s3:*/output/completed/*"},
		},
		{
			name: "merger may touch the rejects table",
			text: replace("iam.tf", "dynamodb:UpdateItem\"]\n    resources = [aws_dynamodb_table.batches.arn]\n  }\n}\n\nresource \"aws_iam_role_policy\" \"merger\"",
				"dynamodb:UpdateItem\"]\n    resources = [aws_dynamodb_table.batches.arn, aws_dynamodb_table.rejects.arn]\n  }\n}\n\nresource \"aws_iam_role_policy\" \"merger\""),
			want: []string{"merger:", "dynamodb:rejects"},
		},
		{
			name: "worker lost task protection",
			text: replace("iam.tf", `"ecs:GetTaskProtection", "ecs:UpdateTaskProtection"`, `"ecs:GetTaskProtection"`),
			want: []string{"worker:", "lacks ecs:UpdateTaskProtection"},
		},
		{
			name: "a role gets a second policy",
			text: func(t *testing.T, files map[string][]byte) {
				files["extra.tf"] = []byte("resource \"aws_iam_role_policy_attachment\" \"oops\" {\n  role       = aws_iam_role.splitter.name\n  policy_arn = \"arn:aws:iam::aws:policy/AdministratorAccess\"\n}\n")
			},
			want: []string{"splitter:", "exactly one policy"},
		},
		{
			name:   "bucket notification dropped",
			remove: []string{"resource", "aws_s3_bucket_notification", "this"},
			want:   []string{"bucket:", "aws_s3_bucket_notification"},
		},
		{
			name: "public access block not restricting",
			text: replace("s3.tf", "restrict_public_buckets = true", "restrict_public_buckets = false"),
			want: []string{"restrict_public_buckets must be true"},
		},
		{
			name: "bucket policy allows plain HTTP",
			text: replace("s3.tf", `variable = "aws:SecureTransport"`, `variable = "aws:SourceIp"`),
			want: []string{"aws:SecureTransport"},
		},
		{
			name:   "bucket unencrypted",
			remove: []string{"resource", "aws_s3_bucket_server_side_encryption_configuration", "this"},
			want:   []string{"bucket:", "encryption"},
		},
		{
			name: "chunks queue without dead-letter queue",
			attr: [3]string{"aws_sqs_queue", "chunks", "redrive_policy"},
			want: []string{"queue chunks:", "redrive_policy"},
		},
		{
			name: "ingest queue open to any bucket",
			text: replace("sqs.tf", `variable = "aws:SourceArn"`, `variable = "aws:SourceAccount_"`),
			want: []string{"ingest queue:", "aws:SourceArn"},
		},
		{
			name: "stop timeout unbounded",
			text: replace("variables.tf", "var.stop_timeout <= 120", "var.stop_timeout <= 600"),
			want: []string{"stop_timeout", "120"},
		},
		{
			// Issue 11 item 13: a retried split reads the archived copy.
			name: "splitter cannot read input_archive/",
			text: replace("iam.tf", `actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/input_archive/*"]
  }
  statement {
    sid       = "WriteChunksAndArchive"`, `actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/input/*"]
  }
  statement {
    sid       = "WriteChunksAndArchive"`),
			want: []string{"splitter:", "lacks s3:GetObject s3:input_archive/*"},
		},
		{
			name: "rejects table without point-in-time recovery",
			text: func(t *testing.T, files map[string][]byte) {
				src := string(files["dynamodb.tf"])
				i := strings.Index(src, `resource "aws_dynamodb_table" "rejects"`)
				j := i + strings.Index(src[i:], "point_in_time_recovery")
				if i < 0 || j < i {
					t.Fatal("dynamodb.tf: no rejects table with point_in_time_recovery: update this case")
				}
				files["dynamodb.tf"] = []byte(src[:j] + "dummy_block" + src[j+len("point_in_time_recovery"):])
			},
			want: []string{"table rejects:", "point_in_time_recovery"},
		},
		{
			name: "rejects table without TTL",
			text: replace("dynamodb.tf", "  ttl {\n    attribute_name = \"expiresAt\"\n    enabled        = true\n  }\n\n  point_in_time_recovery {\n    enabled = var.protect_data\n  }\n}\n\nresource \"aws_dynamodb_table\" \"reference\"",
				"  point_in_time_recovery {\n    enabled = var.protect_data\n  }\n}\n\nresource \"aws_dynamodb_table\" \"reference\""),
			want: []string{"table rejects:", "ttl"},
		},
		{
			name: "notifier cannot count unfinished batches",
			text: replace("iam.tf", `resources = ["${aws_dynamodb_table.batches.arn}/index/unfinished"]`, `resources = [aws_dynamodb_table.batches.arn]`),
			want: []string{"notifier:", "lacks dynamodb:Query dynamodb:batches/index/unfinished"},
		},
		{
			name: "orphaned inputs never expire",
			text: replace("s3.tf", `prefix = "input/"`, `prefix = "inputs/"`),
			want: []string{"bucket:", "expires input/"},
		},
		{
			name: "required_version older than the tests need",
			text: replace("versions.tf", `">= 1.11.0"`, `">= 1.5.0"`),
			want: []string{"terraform:", "required_version"},
		},
		{
			name: "no container insights",
			text: replace("ecs.tf", `value = "enabled"`, `value = "disabled"`),
			want: []string{"Container Insights"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := load(t, func(files map[string][]byte) {
				if c.text != nil {
					c.text(t, files)
				}
			})
			if c.remove != nil && !m.Remove(c.remove[0], c.remove[1:]...) {
				t.Fatalf("no block %v to remove: update this case", c.remove)
			}
			if c.attr[0] != "" {
				b := m.Block("resource", c.attr[0], c.attr[1])
				if b == nil || b.Body.Attributes[c.attr[2]] == nil {
					t.Fatalf("no %v to remove: update this case", c.attr)
				}
				delete(b.Body.Attributes, c.attr[2])
			}
			got := CheckTerraform(m)
			for _, p := range got {
				if containsAll(p, c.want) {
					return
				}
			}
			t.Errorf("no problem mentions all of %q; got:\n%s", c.want, strings.Join(got, "\n"))
		})
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
