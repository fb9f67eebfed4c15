package composetest

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/sluicehq/sluice/pkg/service"
)

// loadCompose loads docker-compose.yml as `docker compose` would from the
// repository root, with env as the whole environment: a developer's own
// SLUICE_* variables must not change what the test sees.
func loadCompose(t *testing.T, env ...string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithName("sluice"),
		cli.WithWorkingDirectory(root),
		cli.WithEnv(env),
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

func env(s types.ServiceConfig, k string) string {
	if v := s.Environment[k]; v != nil {
		return *v
	}
	return ""
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	if p.Name != "sluice" {
		t.Errorf("project name %q, want sluice", p.Name)
	}
	want := append([]string{"localstack", "provision", "prometheus", "grafana"}, service.Stages...)
	for _, name := range want {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("no service %q", name)
		}
	}
	for name := range p.Services {
		if !slices.Contains(want, name) {
			t.Errorf("service %q is not one this test knows: add it to the test", name)
		}
	}
}

// TestComposeSluiceServices checks the four stages and the provision step:
// built from ./Dockerfile, pointed at LocalStack, waiting for it, on :9090.
func TestComposeSluiceServices(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	known := map[string]bool{}
	for _, v := range service.Vars {
		known[v.Name] = true
	}
	for _, name := range append([]string{"provision"}, service.Stages...) {
		t.Run(name, func(t *testing.T) {
			s, ok := p.Services[name]
			if !ok {
				t.Fatalf("no service %q", name)
			}
			if s.Build == nil {
				t.Fatal("not built from the Dockerfile")
			}
			if s.Build.Context != root || s.Build.Dockerfile != "Dockerfile" {
				t.Errorf("builds from %s/%s, want %s/Dockerfile", s.Build.Context, s.Build.Dockerfile, root)
			}
			if s.Image != "sluice:dev" {
				t.Errorf("image %q, want sluice:dev (the tag make images builds)", s.Image)
			}

			// The command names a binary the Dockerfile builds.
			wantCmd := []string{name}
			if name == "provision" {
				wantCmd = []string{"sluice", "provision"}
			}
			if !slices.Equal(s.Command, wantCmd) {
				t.Errorf("command %q, want %q", s.Command, wantCmd)
			}

			if got := env(s, "SLUICE_BUCKET"); got != "sluice-data" {
				t.Errorf("SLUICE_BUCKET=%q, want sluice-data", got)
			}
			ep := env(s, "AWS_ENDPOINT_URL")
			u, err := url.Parse(ep)
			if err != nil || u.Hostname() != "localstack" || u.Port() != "4566" {
				t.Errorf("AWS_ENDPOINT_URL=%q, want http://localstack:4566", ep)
			}
			for _, k := range []string{"AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SLUICE_MAIL_FROM", "SLUICE_MAIL_TO"} {
				if env(s, k) == "" {
					t.Errorf("%s is not set", k)
				}
			}
			if got := env(s, "SLUICE_S3_PATH_STYLE"); got != "true" {
				t.Errorf("SLUICE_S3_PATH_STYLE=%q, want true (LocalStack)", got)
			}
			// Every SLUICE_* variable is one the services read: a typo
			// would be ignored in silence.
			for k := range s.Environment {
				if strings.HasPrefix(k, "SLUICE_") && !known[k] {
					t.Errorf("%s is not a variable pkg/service reads", k)
				}
			}
			// The settings parse as the service would parse them.
			if _, err := service.LoadConfig(name, func(k string) string { return env(s, k) }); err != nil {
				t.Errorf("the service would refuse its environment: %v", err)
			}

			_, port, err := net.SplitHostPort(env(s, "SLUICE_HTTP_ADDR"))
			if err != nil || port != "9090" {
				t.Errorf("SLUICE_HTTP_ADDR=%q, want :9090", env(s, "SLUICE_HTTP_ADDR"))
			}
			if !slices.Contains(s.Expose, "9090") {
				t.Errorf("expose %v, want 9090", s.Expose)
			}

			if d, ok := s.DependsOn["localstack"]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("depends on localstack %+v, want condition service_healthy", d)
			}
			if name != "provision" {
				if d, ok := s.DependsOn["provision"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
					t.Errorf("depends on provision %+v, want condition service_completed_successfully", d)
				}
			}
		})
	}
	if w := p.Services["worker"]; w.GetScale() < 2 {
		r := w.GetScale()
		t.Errorf("worker replicas %d, want at least 2", r)
	}
	if r := p.Services["provision"].Restart; r != "no" {
		t.Errorf("provision restart %q, want no: it is a one-shot", r)
	}
}

func TestComposeLocalStack(t *testing.T) {
	p := loadCompose(t)
	s := p.Services["localstack"]
	if !slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == 4566 && pc.Published == "4566" }) {
		t.Errorf("ports %+v, want 4566:4566 (make test-localstack uses localhost:4566)", s.Ports)
	}
	svcs := strings.Split(env(s, "SERVICES"), ",")
	for _, want := range []string{"s3", "sqs", "dynamodb", "ses"} {
		if !slices.Contains(svcs, want) {
			t.Errorf("SERVICES=%q lacks %s", env(s, "SERVICES"), want)
		}
	}
	if !hasMount(s, filepath.Join(repoRoot(t), "localstack", "ready.d"), "/etc/localstack/init/ready.d") {
		t.Errorf("localstack/ready.d is not mounted at /etc/localstack/init/ready.d: %+v", s.Volumes)
	}
	// The ready hook must name what the services use.
	splitter := p.Services["splitter"]
	for _, k := range []string{"SLUICE_BUCKET", "SLUICE_QUEUE_PREFIX", "SLUICE_TABLE_PREFIX", "SLUICE_MAIL_FROM"} {
		if env(s, k) != env(splitter, k) {
			t.Errorf("localstack %s=%q, the services have %q", k, env(s, k), env(splitter, k))
		}
	}
	hc := s.HealthCheck
	if hc == nil || len(hc.Test) < 2 || hc.Test[0] != "CMD-SHELL" {
		t.Fatalf("healthcheck %+v, want a CMD-SHELL test", hc)
	}
	// $$ in the file is a literal $ for the shell once interpolated.
	if cmd := hc.Test[1]; !strings.Contains(cmd, "/_localstack/init/ready") || !strings.Contains(cmd, "r=$(curl") || strings.Contains(cmd, "$$") {
		t.Errorf("healthcheck command %q: want the init/ready endpoint, with $$ turned into $", cmd)
	}
}

// TestComposeInterpolation: names come from the environment, as documented,
// and reach the services and the ready hook alike.
func TestComposeInterpolation(t *testing.T) {
	p := loadCompose(t, "SLUICE_BUCKET=other-bucket", "SLUICE_QUEUE_PREFIX=dev-", "SLUICE_IMAGE=registry.example/sluice:1")
	for _, name := range append([]string{"localstack"}, service.Stages...) {
		s := p.Services[name]
		if got := env(s, "SLUICE_BUCKET"); got != "other-bucket" {
			t.Errorf("%s: SLUICE_BUCKET=%q, want other-bucket", name, got)
		}
		if got := env(s, "SLUICE_QUEUE_PREFIX"); got != "dev-" {
			t.Errorf("%s: SLUICE_QUEUE_PREFIX=%q, want dev-", name, got)
		}
	}
	if got := p.Services["worker"].Image; got != "registry.example/sluice:1" {
		t.Errorf("worker image %q, want SLUICE_IMAGE", got)
	}
}

// TestComposeBindMounts: every host path mounted exists in the repository,
// or Docker would make an empty directory in its place and the container
// would start without its configuration.
func TestComposeBindMounts(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	n := 0
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			n++
			rel, err := filepath.Rel(root, v.Source)
			if err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s mounts %s, outside the repository", name, v.Source)
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s, which does not exist", name, rel)
			}
			if !v.ReadOnly {
				t.Errorf("%s mounts %s read-write; the containers only read it", name, rel)
			}
		}
	}
	if n == 0 {
		t.Fatal("no bind mounts found: the loader did not resolve them")
	}
	mounts := []struct{ service, source, target string }{
		{"prometheus", "deploy/prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml"},
		{"prometheus", "deploy/prometheus/rules", "/etc/prometheus/rules"},
		{"grafana", "deploy/grafana/provisioning", "/etc/grafana/provisioning"},
		{"grafana", "deploy/grafana/dashboards", "/var/lib/grafana/dashboards"},
	}
	for _, m := range mounts {
		if !hasMount(p.Services[m.service], filepath.Join(root, m.source), m.target) {
			t.Errorf("%s does not mount %s at %s", m.service, m.source, m.target)
		}
	}
}

func hasMount(s types.ServiceConfig, source, target string) bool {
	return slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeBind && v.Source == source && v.Target == target
	})
}
