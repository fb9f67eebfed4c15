package pipeline

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// CrashExitCode is the status a process ends with at a CrashAt point.
const CrashExitCode = 86

// CrashAt is the SLUICE_CRASH_AT test hook of the services: POINT[@N] ends
// the process at once, as kill -9 would, the Nth time (default first) a
// stage reaches that fault point (see Points). Nothing is flushed or
// closed. It returns nil (no fault hook) for an empty spec.
func CrashAt(spec string) func(string) error {
	if spec == "" {
		return nil
	}
	point, nth := spec, 1
	if i := strings.LastIndexByte(spec, '@'); i > 0 {
		point = spec[:i]
		nth, _ = strconv.Atoi(spec[i+1:])
	}
	var hits atomic.Int64
	return func(p string) error {
		if p == point && hits.Add(1) == int64(nth) {
			os.Exit(CrashExitCode)
		}
		return nil
	}
}
