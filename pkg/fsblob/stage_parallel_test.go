package fsblob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests are inside the package: they stand in a file system without
// leases (takeLease) and act between two steps of the copy (stepHook).

// stageFixture is a store and a file of size pseudo-random bytes, old
// enough (quietFor) that the time check needs no wait.
func stageFixture(t *testing.T, size int) (*Store, string, []byte) {
	t.Helper()
	dir := t.TempDir()
	s, err := New(filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(size), byte(size >> 8), byte(size >> 16)})
	r.Read(body)
	src := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(src, body, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(src, old, old); err != nil {
		t.Fatal(err)
	}
	return s, src, body
}

func withHooks(t *testing.T, lease bool, hook func(int64)) {
	if !lease {
		takeLease = func(*os.File) (bool, error) { return false, nil }
	}
	stepHook = hook
	t.Cleanup(func() { takeLease, stepHook = readLease, nil })
}

// noTemp fails if a staged copy was left in the bucket.
func noTemp(t *testing.T, s *Store) {
	t.Helper()
	filepath.WalkDir(s.root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), tmpPrefix) {
			t.Errorf("a staged copy was left behind: %s", p)
		}
		return nil
	})
}

// TestStageFileSteps: whatever the size against the copy's step (none,
// one byte, a step exactly, a step and a byte, many steps and a
// remainder), and however far the copy may run ahead of the hash, the ETag
// is the SHA-256 of the file's bytes and its size, and the published
// object is those bytes.
func TestStageFileSteps(t *testing.T) {
	for _, ahead := range []int64{stageAhead, stageStep} {
		t.Run("ahead="+strconv.FormatInt(ahead, 10), func(t *testing.T) {
			defer func(a int64) { stageAhead = a }(stageAhead)
			stageAhead = ahead // the copy a step ahead at most: it waits for the hash
			stageSizes(t)
		})
	}
}

func stageSizes(t *testing.T) {
	for _, size := range []int{0, 1, stageStep - 1, stageStep, stageStep + 1, 5*stageStep + 12345} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			s, src, body := stageFixture(t, size)
			sum := sha256.Sum256(body)
			want := "sha256-" + hex.EncodeToString(sum[:]) + "-" + strconv.FormatInt(int64(size), 16)
			st, err := s.StageFile(t.Context(), "input/in.csv", src)
			if err != nil {
				t.Fatal(err)
			}
			if st.ETag != want || st.Size != int64(size) {
				t.Fatalf("ETag %s size %d, want %s %d", st.ETag, st.Size, want, size)
			}
			if _, err := st.Publish(t.Context()); err != nil {
				t.Fatal(err)
			}
			r, err := s.Get(t.Context(), "input/in.csv")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			if !bytes.Equal(got, body) {
				t.Fatal("the published copy differs from the file")
			}
		})
	}
}

// TestStageFileSeesAWriteDuringTheCopy: where no lease can be had, a write
// between two steps of the copy (to bytes already copied, or past them)
// gets ErrChanged and leaves no copy, never a copy whose ETag passes for
// the file.
func TestStageFileSeesAWriteDuringTheCopy(t *testing.T) {
	for name, off := range map[string]int64{"copied": 0, "ahead": 4 * stageStep, "appended": 5 * stageStep} {
		t.Run(name, func(t *testing.T) {
			s, src, _ := stageFixture(t, 5*stageStep)
			wrote := false
			withHooks(t, false, func(n int64) {
				if n != stageStep {
					return
				}
				f, err := os.OpenFile(src, os.O_WRONLY, 0)
				if err != nil {
					t.Error(err)
					return
				}
				defer f.Close()
				_, err = f.WriteAt([]byte("changed"), off)
				wrote = err == nil
			})
			st, err := s.StageFile(t.Context(), "input/in.csv", src)
			if !wrote {
				t.Fatal("the write between the steps did not happen")
			}
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("StageFile = %+v, %v; want ErrChanged", st, err)
			}
			noTemp(t, s)
		})
	}
}

// TestStageFileHoldsOffAWriterBetweenSteps: with the read lease, a writer
// that opens the file between two steps waits for the whole copy and
// hash, which are of the file as it was.
func TestStageFileHoldsOffAWriterBetweenSteps(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("read leases are Linux's")
	}
	s, src, body := stageFixture(t, 5*stageStep)
	sum := sha256.Sum256(body)
	wrote := make(chan error, 1)
	withHooks(t, true, func(n int64) {
		if n != stageStep {
			return
		}
		go func() {
			f, err := os.OpenFile(src, os.O_WRONLY, 0) // waits for the lease
			if err == nil {
				_, err = f.WriteAt(bytes.Repeat([]byte("b"), len(body)), 0)
				f.Close()
			}
			wrote <- err
		}()
		time.Sleep(10 * time.Millisecond) // let the writer reach its open
	})
	st, err := s.StageFile(t.Context(), "input/in.csv", src)
	if err != nil {
		t.Fatalf("the copy was refused or failed (the writer should have waited): %v", err)
	}
	if !strings.Contains(st.ETag, hex.EncodeToString(sum[:])) {
		t.Fatalf("ETag %s is not the file's as it was", st.ETag)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	st.Discard()
}

// TestStageFileCancelled: a context cancelled between two steps ends the
// copy and the hash with its error and leaves no copy.
func TestStageFileCancelled(t *testing.T) {
	s, src, _ := stageFixture(t, 5*stageStep)
	ctx, cancel := context.WithCancel(t.Context())
	withHooks(t, true, func(n int64) {
		if n == 2*stageStep {
			cancel()
		}
	})
	if _, err := s.StageFile(ctx, "input/in.csv", src); !errors.Is(err, context.Canceled) {
		t.Fatalf("StageFile = %v, want context.Canceled", err)
	}
	noTemp(t, s)
}
