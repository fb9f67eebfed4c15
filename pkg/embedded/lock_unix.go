//go:build unix

package embedded

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrLocked means another sluice process runs on the same data directory.
var ErrLocked = errors.New("another sluice process is using this data directory")

// dirLock is the directory's lock: flocks on DIR/.lock (what binaries
// before this one take) and on the directory itself, which a clean-up of
// its contents cannot delete: with .lock deleted or replaced, a second
// process would lock a new .lock beside the first, and only the
// directory's lock still stops it.
type dirLock struct{ file, dir *os.File }

// lockDir takes the directory's lock. A lock on a .lock replaced between
// open and flock guards nothing (the next process opens the new file):
// then it tries again, a bounded number of times.
func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, ".lock")
	for range 10 {
		f, err := lockFile(path, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		if !stillAt(f, path) {
			f.Close()
			continue
		}
		d, err := lockFile(dir, os.O_RDONLY)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		return &dirLock{file: f, dir: d}, nil
	}
	return nil, fmt.Errorf("%s: its .lock was replaced ten times while taking it", dir)
}

// lockFile opens path and takes an exclusive flock on it, without waiting.
func lockFile(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	return f, nil
}

// stillAt reports whether f is the file at path now (same device and inode).
func stillAt(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// unlockDir lets go of both flocks (closing the files does).
func unlockDir(l *dirLock) error {
	return errors.Join(l.dir.Close(), l.file.Close())
}
