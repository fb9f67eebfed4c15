package services_test

import (
	"flag"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/sluicehq/sluice/pkg/deploytest"
)

// checkObservedCalls proves least privilege by observation, after every
// test of the package has run: each AWS call a service made in the e2e,
// crash and chaos tests must be allowed by that service's policy in
// deploy/terraform, and, when the whole package ran, every grant must have
// been used by some call or be explained in deploytest.Unobserved.
// SLUICE_TEST_SAVE_OBSERVED copies the calls to a file (how
// pkg/deploytest/testdata/observed.jsonl is refreshed).
func checkObservedCalls(code int) int {
	if code != 0 {
		return code
	}
	calls, err := deploytest.ReadCalls(observed)
	if os.IsNotExist(err) || (err == nil && len(calls) == 0) {
		fmt.Fprintln(os.Stderr, "least privilege: no AWS calls were observed (emulators unavailable?); not checked")
		return code
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "least privilege:", err)
		return 1
	}
	if out := os.Getenv("SLUICE_TEST_SAVE_OBSERVED"); out != "" {
		if err := copyFile(observed, out); err != nil {
			fmt.Fprintln(os.Stderr, "least privilege:", err)
			return 1
		}
	}
	files, err := deploytest.ReadDir("../deploy/terraform")
	if err != nil {
		fmt.Fprintln(os.Stderr, "least privilege:", err)
		return 1
	}
	m, err := deploytest.Parse(files)
	if err != nil {
		fmt.Fprintln(os.Stderr, "least privilege:", err)
		return 1
	}
	complete := flagValue("test.run") == "" && flagValue("test.skip") == "" && !testing.Short()
	problems := deploytest.CheckObserved(m, calls, complete)
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "least privilege:", p)
	}
	if len(problems) > 0 {
		return 1
	}
	fmt.Fprintf(os.Stderr, "least privilege: %d distinct AWS calls observed, each allowed by deploy/terraform (unused grants checked: %v)\n", len(calls), complete)
	return code
}

func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
