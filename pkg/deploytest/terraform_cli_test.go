package deploytest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// defaultMirror is where a machine without registry access may keep
// providers (Terraform's unpacked filesystem-mirror layout);
// SLUICE_TF_PLUGIN_MIRROR overrides it.
const defaultMirror = "/opt/tf-plugins"

// TestTerraformCLI runs terraform fmt, validate and test (a plan against a
// mocked provider, deploy/terraform/tests) when terraform and the AWS
// provider can be had; the HCL checks above run everywhere.
func TestTerraformCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not running terraform")
	}
	tf, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform is not installed")
	}
	dir := t.TempDir()
	copyGlob(t, filepath.Join(terraformDir, "*.tf"), dir)
	copyGlob(t, filepath.Join(terraformDir, "tests", "*.tftest.hcl"), filepath.Join(dir, "tests"))

	env := append(os.Environ(), "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "TF_INPUT=0")
	mirror := os.Getenv("SLUICE_TF_PLUGIN_MIRROR")
	if mirror == "" {
		mirror = defaultMirror
	}
	haveMirror := false
	if _, err := os.Stat(filepath.Join(mirror, "registry.terraform.io", "hashicorp", "aws")); err == nil {
		haveMirror = true
		rc := filepath.Join(t.TempDir(), "terraformrc")
		cfg := `provider_installation {
  filesystem_mirror {
    path    = "` + mirror + `"
    include = ["registry.terraform.io/*/*"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
`
		if err := os.WriteFile(rc, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		env = append(env, "TF_CLI_CONFIG_FILE="+rc)
	}

	run := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, tf, append(args, "-no-color")...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	if out, err := run(time.Minute, "fmt", "-check", "-recursive", "-diff"); err != nil {
		t.Errorf("terraform fmt: deploy/terraform is not formatted:\n%s", out)
	}
	if out, err := run(5*time.Minute, "init", "-backend=false", "-input=false"); err != nil {
		if !haveMirror {
			t.Skipf("terraform init could not install the AWS provider (no registry access and no mirror at %s):\n%s", mirror, out)
		}
		t.Fatalf("terraform init: %v\n%s", err, out)
	}
	if out, err := run(5*time.Minute, "validate"); err != nil {
		t.Fatalf("terraform validate: %v\n%s", err, out)
	}
	out, err := run(10*time.Minute, "test")
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("terraform test: %v", err)
		}
		t.Fatalf("terraform test failed:\n%s", out)
	}
	if !strings.Contains(out, "0 failed") {
		t.Fatalf("terraform test: unexpected output:\n%s", out)
	}
	t.Logf("terraform test:\n%s", out)
}

func copyGlob(t *testing.T, pattern, to string) {
	t.Helper()
	names, err := filepath.Glob(pattern)
	if err != nil || len(names) == 0 {
		t.Fatalf("nothing matches %s", pattern)
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, filepath.Base(n)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
