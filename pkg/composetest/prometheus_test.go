package composetest

import (
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/pkg/service"
)

// promConfig is the part of Prometheus's configuration this test reads.
type promConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		DNSSDConfigs []struct {
			Names []string `yaml:"names"`
			Type  string   `yaml:"type"`
			Port  int      `yaml:"port"`
		} `yaml:"dns_sd_configs"`
	} `yaml:"scrape_configs"`
}

// TestPrometheusScrapesTheFourServices: deploy/prometheus/prometheus.yml
// scrapes exactly splitter, worker, merger and notifier on :9090/metrics,
// each a compose service listening there, and loads the rules folder that
// compose mounts.
func TestPrometheusScrapesTheFourServices(t *testing.T) {
	var cfg promConfig
	if err := yaml.Unmarshal([]byte(readFile(t, "deploy/prometheus/prometheus.yml")), &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	p := loadCompose(t)

	var targets, jobs []string
	for _, sc := range cfg.ScrapeConfigs {
		if slices.Contains(jobs, sc.JobName) {
			t.Errorf("job %q appears twice", sc.JobName)
		}
		jobs = append(jobs, sc.JobName)
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path %q, the services serve /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
		for _, d := range sc.DNSSDConfigs {
			if d.Type != "A" {
				t.Errorf("job %s: dns_sd type %q, want A (Docker's DNS has no SRV records)", sc.JobName, d.Type)
			}
			for _, n := range d.Names {
				targets = append(targets, net.JoinHostPort(n, strconv.Itoa(d.Port)))
			}
		}
	}
	var want []string
	for _, s := range service.Stages {
		want = append(want, s+":9090")
	}
	slices.Sort(targets)
	slices.Sort(want)
	if !slices.Equal(targets, want) {
		t.Errorf("scrape targets %q, want %q", targets, want)
	}
	for _, tg := range targets {
		host, port, _ := net.SplitHostPort(tg)
		s, ok := p.Services[host]
		if !ok {
			t.Errorf("target %s is not a compose service", tg)
			continue
		}
		if _, sport, _ := net.SplitHostPort(env(s, "SLUICE_HTTP_ADDR")); sport != port {
			t.Errorf("target %s, but %s listens on %q", tg, host, env(s, "SLUICE_HTTP_ADDR"))
		}
	}

	// The rule files live where compose mounts deploy/prometheus/rules.
	if !slices.Contains(cfg.RuleFiles, "/etc/prometheus/rules/*.yml") {
		t.Errorf("rule_files %q, want /etc/prometheus/rules/*.yml", cfg.RuleFiles)
	}
	for _, rf := range cfg.RuleFiles {
		dir := path.Dir(rf)
		mounted := slices.ContainsFunc(p.Services["prometheus"].Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Target == dir || strings.HasPrefix(dir, v.Target+"/")
		})
		if !mounted {
			t.Errorf("rule_files %s: %s is not mounted into the prometheus container", rf, dir)
		}
	}
}
