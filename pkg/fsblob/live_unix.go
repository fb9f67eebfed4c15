//go:build unix

package fsblob

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// lockMarker creates path and holds a shared flock on it. A sweep that
// found it dead holds it exclusively, removes it, then lets go: the flock
// then taken is on a file no longer at path, so lockPlace's retry takes a
// new one (bounded: each round needs a sweep to win a race).
func lockMarker(path string) (*os.File, error) { return lockPlace(path, false) }

// probeMarker tells whether path's holder lives. On markerDead the caller
// holds the exclusive lock on the returned file until it closes it.
func probeMarker(path string) (markerState, *os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return markerNone, nil, nil
	}
	if err != nil {
		return markerLive, nil, err // unknown: spare its files
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return markerLive, nil, nil
		}
		return markerLive, nil, err
	}
	if !atPath(f, path) {
		// Its holder let go and may hold a new one by now: spare.
		f.Close()
		return markerLive, nil, nil
	}
	return markerDead, f, nil
}

// atPath reports whether f is still the file at path (not deleted or
// replaced since it was opened): a lock on an orphan guards nothing.
func atPath(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
