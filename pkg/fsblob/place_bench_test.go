package fsblob

import (
	"bytes"
	"path/filepath"
	"testing"
)

// BenchmarkPutSmall is a Put of a 100-byte object: its fixed costs (temp
// file, hash, xattr, rename, and the place lock's flock pair) dominate.
func BenchmarkPutSmall(b *testing.B) {
	s, err := New(filepath.Join(b.TempDir(), "bucket"))
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 100)
	for b.Loop() {
		if _, err := s.Put(b.Context(), "input/f.csv", bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlaceLock is the place lock alone, as every rename into the
// bucket takes it: open, shared flock, identity check, close.
func BenchmarkPlaceLock(b *testing.B) {
	path := filepath.Join(b.TempDir(), placeLockName)
	for b.Loop() {
		l, err := lockPlace(path, false)
		if err != nil {
			b.Fatal(err)
		}
		l.Close()
	}
}
