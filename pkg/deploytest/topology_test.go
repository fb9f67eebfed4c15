package deploytest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/pipeline"
)

// The topology test: pipeline.Topology is the one declaration of the
// stages, and every deploy file that cannot import it (Terraform,
// Kubernetes, the dashboards and alert rules) is compared to it here. The
// checks that follow the IAM wiring (CheckTerraform, CheckKubernetes) go
// by Stages; so Stages must agree with the topology too.

const (
	grafanaDir    = "../../deploy/grafana/dashboards"
	prometheusDir = "../../deploy/prometheus/rules"
)

// topologyStages compares Stages (the IAM table) with pipeline.Topology.
func topologyStages(stages []Stage) []string {
	var p problems
	if len(stages) != len(pipeline.Topology) {
		p.add("deploytest.Stages has %d stages, pipeline.Topology %d", len(stages), len(pipeline.Topology))
	}
	for i, st := range pipeline.Topology {
		if i >= len(stages) {
			break
		}
		s := stages[i]
		if s.Name != st.Service || s.Queue != st.Queue {
			p.add("stage %d: deploytest.Stages has %s reading %s, the topology %s reading %s", i, s.Name, s.Queue, st.Service, st.Queue)
		}
		if s.Visibility != st.Visibility.Seconds() {
			p.add("%s: deploytest.Stages visibility %vs, the topology %v", st.Service, s.Visibility, st.Visibility)
		}
		if !slices.Equal(s.SendsTo, st.Sends) {
			p.add("%s: deploytest.Stages sends to %v, the topology to %v", st.Service, s.SendsTo, st.Sends)
		}
		if s.Protect != st.Protect {
			p.add("%s: deploytest.Stages protect %v, the topology %v", st.Service, s.Protect, st.Protect)
		}
	}
	return p
}

// topologyTerraform compares the module's queues, services and receive
// count with the topology: exactly its queues, each with the stage's
// visibility, and exactly its services.
func topologyTerraform(m *Module) []string {
	var p problems
	var want []string
	for _, st := range pipeline.Topology {
		want = append(want, st.Queue, st.Queue+"_dlq")
		q := m.Block("resource", "aws_sqs_queue", st.Queue)
		if q == nil {
			p.add("terraform: no aws_sqs_queue.%s for the %s stage", st.Queue, st.Name)
			continue
		}
		if n, ok := number(attr(q, "visibility_timeout_seconds")); !ok || n != st.Visibility.Seconds() {
			p.add("terraform: aws_sqs_queue.%s visibility_timeout_seconds %v, the topology says %v", st.Queue, n, st.Visibility)
		}
		if got := sourceName(attr(q, "name")); got != st.Queue {
			p.add("terraform: aws_sqs_queue.%s is named PREFIX+%q, the topology says %q", st.Queue, got, st.Queue)
		}
	}
	if got := sortedKeys(m.Resources("aws_sqs_queue")); !equal(got, sorted(want)) {
		p.add("terraform: aws_sqs_queue resources %v, the topology makes %v", got, sorted(want))
	}
	services := pipeline.Services()
	for _, typ := range []string{"aws_ecs_service", "aws_ecs_task_definition", "aws_iam_role"} {
		var got []string
		for name := range m.Resources(typ) {
			if slices.Contains(services, name) || typ == "aws_ecs_service" || typ == "aws_ecs_task_definition" {
				got = append(got, name)
			}
		}
		if !equal(sorted(got), sorted(services)) {
			p.add("terraform: %s resources %v, the topology's services are %v", typ, sorted(got), services)
		}
	}
	if v := m.Block("variable", "max_receive_count"); v == nil {
		p.add("terraform: no variable max_receive_count")
	} else if n, ok := number(attr(v, "default")); !ok || n != pipeline.MaxReceive {
		p.add("terraform: max_receive_count defaults to %v, pipeline.MaxReceive is %d", n, pipeline.MaxReceive)
	}
	return p
}

// topologyKubernetes: one Deployment per service, named sluice-SERVICE,
// running the SERVICE binary, scaled on its own queue.
func topologyKubernetes(objs []Object) []string {
	var p problems
	var deployments []string
	scaled := map[string]string{}
	for _, o := range objs {
		switch o.Kind() {
		case "Deployment":
			deployments = append(deployments, strings.TrimPrefix(o.Name(), "sluice-"))
			cmd, _ := get(o, "spec", "template", "spec", "containers", "0", "command", "0").(string)
			if want := strings.TrimPrefix(o.Name(), "sluice-"); cmd != want {
				p.add("kubernetes: Deployment %s runs %q, not the %s service", o.Name(), cmd, want)
			}
		case "ScaledObject":
			q, _ := get(o, "spec", "triggers", "0", "metadata", "queueURL").(string)
			scaled[strings.TrimPrefix(o.Name(), "sluice-")] = q
		}
	}
	if !equal(sorted(deployments), sorted(pipeline.Services())) {
		p.add("kubernetes: Deployments for %v, the topology's services are %v", sorted(deployments), pipeline.Services())
	}
	for _, st := range pipeline.Topology {
		if q, ok := scaled[st.Service]; !ok || !strings.HasSuffix(q, "-"+st.Queue) && q != st.Queue {
			p.add("kubernetes: %s scales on queue %q, the topology says it reads %s", st.Service, q, st.Queue)
		}
	}
	return p
}

var (
	stageLabelRE = regexp.MustCompile(`stage\s*=\s*\\?"([^"\\]*)`)
	// label_replace(... queue=~"(.+-)?QUEUE" ...), "stage", "STAGE", ...)
	backlogRE = regexp.MustCompile(`queue=~"\(\.\+-\)\?([a-z]+)"\}\),\s*"stage",\s*"([a-z]+)"`)
)

// topologyDashboards: every stage label the dashboards and alert rules
// select is a stage of the topology, and the rules' backlog record maps
// each stage's own queue to that stage, for every stage.
func topologyDashboards(files map[string]string) []string {
	var p problems
	names := map[string]string{}
	for _, st := range pipeline.Topology {
		names[st.Name] = st.Queue
	}
	backlog := map[string]string{}
	for _, f := range sortedKeys(files) {
		for _, m := range stageLabelRE.FindAllStringSubmatch(files[f], -1) {
			if _, ok := names[m[1]]; !ok {
				p.add("%s: stage=%q is no stage of the topology", f, m[1])
			}
		}
		for _, m := range backlogRE.FindAllStringSubmatch(files[f], -1) {
			backlog[m[2]] = m[1]
			if names[m[2]] != m[1] {
				p.add("%s: the backlog of stage %q is read from queue %q; the topology says %q", f, m[2], m[1], names[m[2]])
			}
		}
	}
	for _, st := range pipeline.Topology {
		if _, ok := backlog[st.Name]; !ok {
			p.add("rules: no sluice:stage_backlog:max series for stage %q (queue %s)", st.Name, st.Queue)
		}
	}
	return p
}

// topologyREADME: the README's design section shows the table as it is.
func topologyREADME(readme string) []string {
	var p problems
	for _, st := range pipeline.Topology {
		sends := "—"
		if len(st.Sends) > 0 {
			sends = "`" + strings.Join(st.Sends, "`, `") + "`"
		}
		row := fmt.Sprintf("| `%s` | `%s` | `%s` | %s | %s |", st.Name, st.Service, st.Queue, sends, strings.TrimSuffix(st.Visibility.String(), "0s"))
		if !strings.Contains(readme, row) {
			p.add("README: the topology table lacks the row %s", row)
		}
	}
	return p
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readObservability(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, pattern := range []string{grafanaDir + "/*.json", prometheusDir + "/*.yml"} {
		names, err := filepath.Glob(pattern)
		if err != nil || len(names) == 0 {
			t.Fatalf("%s: no files (%v)", pattern, err)
		}
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			files[filepath.Base(n)] = string(b)
		}
	}
	return files
}

func TestTopologyMatchesDeployFiles(t *testing.T) {
	objs, _, err := ReadManifests(kubernetesDir)
	if err != nil {
		t.Fatal(err)
	}
	check := map[string][]string{
		"deploytest.Stages": topologyStages(Stages),
		"terraform":         topologyTerraform(load(t, nil)),
		"kubernetes":        topologyKubernetes(objs),
		"dashboards":        topologyDashboards(readObservability(t)),
		"README":            topologyREADME(readFile(t, "../../README.md")),
	}
	for what, problems := range check {
		for _, p := range problems {
			t.Errorf("%s: %s", what, p)
		}
	}
}

// TestTopologyChecksCatch proves each comparison fails when a deploy file
// drifts from the topology.
func TestTopologyChecksCatch(t *testing.T) {
	objs, _, err := ReadManifests(kubernetesDir)
	if err != nil {
		t.Fatal(err)
	}
	obs := readObservability(t)
	replace := func(file, old, new string) map[string]string {
		c := map[string]string{}
		for k, v := range obs {
			c[k] = v
		}
		if !strings.Contains(c[file], old) {
			t.Fatalf("%s has no %q to change", file, old)
		}
		c[file] = strings.Replace(c[file], old, new, 1)
		return c
	}
	// tfEdit replaces the first match of the regexp old.
	tfEdit := func(file, old, new string) func(map[string][]byte) {
		return func(files map[string][]byte) {
			re := regexp.MustCompile(old)
			loc := re.FindSubmatchIndex(files[file])
			if loc == nil {
				t.Fatalf("%s has no %q to change", file, old)
			}
			var b []byte
			b = append(b, files[file][:loc[0]]...)
			b = re.Expand(b, []byte(new), files[file], loc)
			files[file] = append(b, files[file][loc[1]:]...)
		}
	}
	stages := slices.Clone(Stages)
	stages[1].Visibility = 121
	k8s := slices.Clone(objs)
	for i, o := range k8s {
		if o.Kind() == "ScaledObject" && o.Name() == "sluice-merger" {
			c := Object{}
			for k, v := range o {
				c[k] = v
			}
			c["spec"] = map[string]any{"triggers": []any{map[string]any{"metadata": map[string]any{"queueURL": "sluice-notify"}}}}
			k8s[i] = c
		}
	}
	cases := []struct {
		name     string
		problems []string
		want     string
	}{
		{"IAM table visibility", topologyStages(stages), "worker: deploytest.Stages visibility 121s"},
		{"queue visibility", topologyTerraform(load(t, tfEdit("sqs.tf", `visibility_timeout_seconds = 120`, `visibility_timeout_seconds = 90`))), "aws_sqs_queue.chunks visibility_timeout_seconds 90"},
		{"queue renamed", topologyTerraform(load(t, tfEdit("sqs.tf", `"\$\{var.name_prefix\}merge"`, `"$${var.name_prefix}merges"`))), `aws_sqs_queue.merge is named PREFIX+"merges"`},
		{"max receive", topologyTerraform(load(t, tfEdit("variables.tf", `(variable "max_receive_count" \{[^}]*default\s*=\s*)5`, `${1}4`))), "max_receive_count defaults to 4"},
		{"scaled on another queue", topologyKubernetes(k8s), "merger scales on queue \"sluice-notify\""},
		{"unknown stage label", topologyDashboards(replace("sluice.yml", `stage="process"`, `stage="worker"`)), `stage="worker" is no stage`},
		{"README row", topologyREADME(strings.Replace(readFile(t, "../../README.md"), "| `merger` | `merge` | `notify`, `deliveries` | 5m |", "| `merger` | `merge` | `notify`, `deliveries` | 3m |", 1)), "lacks the row | `merge` | `merger`"},
		{"backlog from the wrong queue", topologyDashboards(replace("sluice.yml", `"(.+-)?merge"}), "stage", "merge"`, `"(.+-)?notify"}), "stage", "merge"`)), `backlog of stage "merge" is read from queue "notify"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !slices.ContainsFunc(c.problems, func(p string) bool { return strings.Contains(p, c.want) }) {
				t.Errorf("want a problem containing %q, got %s", c.want, fmt.Sprint(c.problems))
			}
		})
	}
}
