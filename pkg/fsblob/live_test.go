//go:build unix

package fsblob_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/fsblob"
)

// TestSweepDeadAsksEachTokensMarker: a process sharing the bucket holds
// its marker (an flock on .sluice-tmp-live-<token>; another open file
// stands for it here, flock being per open file): its temporary files
// stay though the caller holds the data directory alone; a token whose
// marker nobody holds is dead (its files and marker go); a file without a
// marker goes only once older than OrphanAge while another process lives,
// and at once when none does.
func TestSweepDeadAsksEachTokensMarker(t *testing.T) {
	dir := t.TempDir()
	s, err := fsblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	liveMarker := filepath.Join(dir, fsblob.TempPrefix+"live-aaaaaaaa")
	deadMarker := filepath.Join(dir, fsblob.TempPrefix+"live-bbbbbbbb")
	for _, p := range []string{liveMarker, deadMarker} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	holder, err := os.Open(liveMarker)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	f := func(name string) string { return filepath.Join(dir, "b1", "output", name) }
	live, dead := f(fsblob.TempPrefix+"aaaaaaaa-1"), f(fsblob.TempPrefix+"bbbbbbbb-2")
	young, old := f(fsblob.TempPrefix+"cccccccc-3"), f(fsblob.TempPrefix+"12345")
	for _, p := range []string{live, dead, young, old} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-fsblob.OrphanAge - time.Minute)
	os.Chtimes(old, long, long)
	if others, err := fsblob.OthersLive(dir); err != nil || !others {
		t.Fatalf("OthersLive = %v, %v with a marker held", others, err)
	}
	got, err := fsblob.SweepDead(t.Context(), dir, true)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got.Paths)
	if want := []string{old, dead}; !slices.Equal(got.Paths, want) {
		t.Fatalf("SweepDead removed %v, want %v", got.Paths, want)
	}
	if _, err := os.Stat(deadMarker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead token's marker is still there (%v)", err)
	}
	if _, err := os.Stat(liveMarker); err != nil {
		t.Errorf("the live marker: %v", err)
	}
	holder.Close() // the other process dies
	got, err = fsblob.SweepDead(t.Context(), dir, true)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got.Paths)
	if want := []string{live, young}; !slices.Equal(got.Paths, want) {
		t.Fatalf("after the holder died, SweepDead removed %v, want %v", got.Paths, want)
	}
	if others, _ := fsblob.OthersLive(dir); others {
		t.Error("OthersLive with no marker held but this process's")
	}
}

// TestMarkerLivesWithTheStores: a process's marker is there while one of
// its Stores on the bucket is open, and gone after the last Close; the
// sweeps (age or token) never take it for a temporary file; List never
// shows it.
func TestMarkerLivesWithTheStores(t *testing.T) {
	dir := t.TempDir()
	a, err := fsblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fsblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	markers := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, fsblob.TempPrefix+"live-*"))
		return m
	}
	if len(markers()) != 1 {
		t.Fatalf("markers with two stores open: %v", markers())
	}
	if sw, _ := fsblob.SweepTemp(dir, []string{fsblob.TempPrefix}, 0); len(sw.Paths) != 0 {
		t.Fatalf("SweepTemp removed %v", sw.Paths)
	}
	if ls, _ := a.List(t.Context(), ""); len(ls) != 0 {
		t.Fatalf("List shows %v", ls)
	}
	a.Close()
	a.Close() // twice is once
	if len(markers()) != 1 {
		t.Fatalf("markers with one store open: %v", markers())
	}
	b.Close()
	if m := markers(); len(m) != 0 {
		t.Fatalf("markers after the last Close: %v", m)
	}
}
