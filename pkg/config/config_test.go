package config_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
)

func TestMaxRejectRate(t *testing.T) {
	if config.Default().Limits.MaxRejectRate != nil {
		t.Fatal("the default sets a reject-rate limit; it must be opt-in")
	}
	p, err := config.Parse([]byte("limits:\n  maxRejectRate: 0.5\n"))
	if err != nil || p.Limits.MaxRejectRate == nil || *p.Limits.MaxRejectRate != 0.5 {
		t.Fatalf("maxRejectRate 0.5: %v %v", p, err)
	}
	if p.Limits.MaxLineBytes != config.Default().Limits.MaxLineBytes {
		t.Fatal("setting one limit dropped the others")
	}
	for _, bad := range []string{"1.5", "-0.1", "50%"} {
		_, err := config.Parse([]byte("limits:\n  maxRejectRate: " + bad + "\n"))
		if err == nil {
			t.Errorf("maxRejectRate %s accepted", bad)
		} else if bad != "50%" && !strings.Contains(err.Error(), "fraction") {
			t.Errorf("maxRejectRate %s: %v", bad, err)
		}
	}
}
