package promtest

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/pkg/consumer"
	"github.com/sluicehq/sluice/pkg/metrics"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// exported is every series name a Sluice process can export: each metric
// of pkg/metrics, given one child so that vectors show, plus the Go and
// process collectors'.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	m.Received("process", 1)
	m.Handled("process", consumer.DeadLettered, sluice.ReasonMalformed, time.Millisecond)
	m.Rows("process", "in", 1)
	m.Rejected("pattern", 1)
	m.Bytes("process", "written", 1)
	m.BatchEnded(sluice.StateCompleted, time.Second)
	m.SampleQueue("chunks", sluice.QueueDepth{})
	m.SampleBatches(map[sluice.State]int{})
	m.Workers.WithLabelValues("process", "current").Set(1)
	m.AWSCall("s3", "PutObject")
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		names[n] = true
		switch mf.GetType().String() {
		case "HISTOGRAM":
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case "SUMMARY":
			names[n+"_sum"], names[n+"_count"] = true, true
		}
	}
	if !names["sluice_aws_calls_total"] || !names["go_goroutines"] {
		t.Fatalf("gathered names look incomplete: %v", names)
	}
	return names
}

// TestQueriesUseExportedMetrics: every panel query and rule expression
// reads only metrics pkg/metrics registers, series Prometheus makes itself
// (up), and series the rule files record.
func TestQueriesUseExportedMetrics(t *testing.T) {
	have := exported(t)
	have["up"] = true
	recorded := map[string]bool{}
	qs := append(dashboardQueries(t), ruleQueries(t)...)
	for _, q := range qs {
		if q.rec != "" {
			recorded[q.rec] = true
		}
	}
	for _, q := range qs {
		names := metricsIn(q.expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric found in %q", q.where, q.expr)
		}
		for _, n := range names {
			if !have[n] && !recorded[n] {
				t.Errorf("%s: %s is not a metric Sluice exports nor a recorded one", q.where, n)
			}
		}
	}
}

// TestDashboardShape: every panel is a kind this repository uses, has a
// unique id and a position, and queries the provisioned data source by uid.
func TestDashboardShape(t *testing.T) {
	uids := map[string]string{}
	for _, d := range loadDashboards(t) {
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid and title are required", d.file)
		}
		if other, ok := uids[d.UID]; ok {
			t.Errorf("%s and %s share uid %q", d.file, other, d.UID)
		}
		uids[d.UID] = d.file
		if d.SchemaVersion < 36 {
			t.Errorf("%s: schemaVersion %d; datasource references by uid need 36 or later", d.file, d.SchemaVersion)
		}
		ids := map[int]bool{}
		for _, p := range allPanels(d.Panels) {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("%s: panel %q: id %d missing or repeated", d.file, p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				continue
			}
			if !slices.Contains([]string{"timeseries", "stat", "bargauge"}, p.Type) {
				t.Errorf("%s: panel %q has type %q", d.file, p.Title, p.Type)
			}
			if p.Datasource.UID != "prometheus" {
				t.Errorf("%s: panel %q: datasource uid %q, want prometheus", d.file, p.Title, p.Datasource.UID)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", d.file, p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Datasource.UID != "prometheus" || strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: panel %q target %s: datasource %q, expr %q", d.file, p.Title, tg.RefID, tg.Datasource.UID, tg.Expr)
				}
			}
		}
	}
}

// TestRuleShape: every alert says what happened and what to do, and has a
// severity.
func TestRuleShape(t *testing.T) {
	for f, rf := range loadRules(t) {
		if len(rf.Groups) == 0 {
			t.Errorf("%s: no groups", f)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if (r.Alert == "") == (r.Record == "") {
					t.Errorf("%s/%s: a rule is an alert or a record", f, g.Name)
				}
				if r.Alert == "" {
					continue
				}
				if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("%s: alert %s lacks a summary or description annotation", f, r.Alert)
				}
				if !slices.Contains([]string{"info", "warning", "critical"}, r.Labels["severity"]) {
					t.Errorf("%s: alert %s: severity %q", f, r.Alert, r.Labels["severity"])
				}
			}
		}
	}
}

// TestGrafanaProvisioning: the data source has the uid the dashboards use,
// and the dashboard provider reads the folder docker-compose.yml mounts
// deploy/grafana/dashboards at.
func TestGrafanaProvisioning(t *testing.T) {
	root := repoRoot(t)
	var dsf struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(root, "deploy/grafana/provisioning/datasources/prometheus.yml"), &dsf)
	if len(dsf.Datasources) != 1 || dsf.Datasources[0].UID != "prometheus" || dsf.Datasources[0].Type != "prometheus" || dsf.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("datasources: %+v, want one prometheus, uid prometheus, at http://prometheus:9090", dsf.Datasources)
	}
	var prov struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(root, "deploy/grafana/provisioning/dashboards/sluice.yml"), &prov)
	var compose struct {
		Services map[string]struct {
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	readYAML(t, filepath.Join(root, "docker-compose.yml"), &compose)
	mounts := map[string]string{}
	for _, v := range compose.Services["grafana"].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			mounts[filepath.Clean(parts[0])] = parts[1]
		}
	}
	dashDir, ok := mounts["deploy/grafana/dashboards"]
	if !ok {
		t.Fatalf("docker-compose.yml does not mount deploy/grafana/dashboards into grafana: %v", mounts)
	}
	if mounts["deploy/grafana/provisioning"] != "/etc/grafana/provisioning" {
		t.Errorf("docker-compose.yml mounts deploy/grafana/provisioning at %q, want /etc/grafana/provisioning", mounts["deploy/grafana/provisioning"])
	}
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || prov.Providers[0].Options.Path != dashDir {
		t.Errorf("dashboard providers %+v, want one file provider reading %s", prov.Providers, dashDir)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestTraceLinksUseADatasourceVariable: a dashboard link into Explore names
// its data source through a dashboard variable of type datasource that
// lists Tempo data sources, never a hard-coded uid such as "tempo" that a
// given Grafana may not have.
func TestTraceLinksUseADatasourceVariable(t *testing.T) {
	found := false
	for _, d := range loadDashboards(t) {
		vars := map[string]string{} // datasource variables: name -> plugin type
		for _, v := range d.Templating.List {
			if v.Type == "datasource" {
				vars[v.Name] = v.Query
			}
		}
		for _, l := range d.Links {
			if !strings.Contains(l.URL, "/explore") {
				continue
			}
			found = true
			u, err := url.QueryUnescape(l.URL)
			if err != nil {
				t.Fatalf("%s: link %q: %v", d.file, l.Title, err)
			}
			m := regexp.MustCompile(`"datasource":"([^"]*)"`).FindStringSubmatch(u)
			if m == nil {
				t.Errorf("%s: link %q names no data source: %s", d.file, l.Title, u)
				continue
			}
			name := strings.TrimSuffix(strings.TrimPrefix(m[1], "${"), "}")
			if !strings.HasPrefix(m[1], "${") || vars[name] != "tempo" {
				t.Errorf("%s: link %q uses data source %q; want ${VAR} of a datasource variable whose query is tempo (have %v)", d.file, l.Title, m[1], vars)
			}
		}
	}
	if !found {
		t.Fatal("no dashboard links to a trace in Explore")
	}
}
