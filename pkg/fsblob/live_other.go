//go:build !unix

package fsblob

import "os"

// Without flock no process marks its writes live: a sweep removes other
// processes' temporary files only by age, or when the caller holds the
// data directory alone (SweepDead).
func lockMarker(string) (*os.File, error) { return nil, nil }

func probeMarker(string) (markerState, *os.File, error) { return markerNone, nil, nil }
