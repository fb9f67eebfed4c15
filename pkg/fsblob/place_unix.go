//go:build unix

package fsblob

import (
	"fmt"
	"os"
	"syscall"
)

// lockPlace opens the bucket's place lock at path and flocks it (shared
// for a rename into the bucket, exclusive for DeleteIf). Every call opens
// its own file: flocks of two open files conflict whether they are in one
// process or two, so this orders writes across the processes sharing a
// data directory (the local-backend services, the chaos driver) as well as
// within one. A lock file replaced since it was opened guards nothing, so
// it tries again (nothing removes it: the sweeps skip it).
func lockPlace(path string, exclusive bool) (*os.File, error) {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for range 10 {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, fmt.Errorf("fsblob: %w", err)
		}
		if err := flock(f, how); err != nil {
			f.Close()
			return nil, fmt.Errorf("fsblob: locking %s: %w", path, err)
		}
		if atPath(f, path) {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("fsblob: %s was replaced ten times while locking it", path)
}
