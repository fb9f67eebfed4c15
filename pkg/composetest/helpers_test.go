package composetest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/pkg/testenv"
)

func repoRoot(t *testing.T) string { return testenv.RepoRoot(t) }

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
