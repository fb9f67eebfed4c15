package fsblob

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// TempPrefix starts the name of every file Put is still writing. A process
// killed mid-write leaves such a file behind; SweepTemp removes it.
const TempPrefix = ".sluice-tmp-"

// Swept is what SweepTemp removed.
type Swept struct {
	Paths []string
	Bytes int64
}

// SweepTemp removes, under dir and its subdirectories, the files whose
// names start with one of prefixes and that were last written more than
// olderThan ago: the temporary files of writes whose process died (Put's,
// the reference store's, the outbox's). A caller that holds the data
// directory's lock knows no write is under way and passes 0; one that
// shares the directory passes a period no live write lasts. Files that
// vanish meanwhile are not an error.
func SweepTemp(dir string, prefixes []string, olderThan time.Duration) (Swept, error) {
	cutoff := time.Now().Add(-olderThan)
	match := func(name string) (bool, time.Time) {
		// A marker or the place lock is no temporary file: live processes hold them.
		return hasAnyPrefix(name, prefixes) && !isLockFile(name), cutoff
	}
	return sweepIf(context.Background(), dir, match)
}

// OrphanAge is how old a temporary file without a marked token (a binary
// from before markers, or a process that let go of its marker) must be
// before a sweep that shares the directory takes it as dead: no write
// lasts an hour.
const OrphanAge = time.Hour

// SweepDead removes, under the bucket dir, the temporary files of writes
// whose process died. A file's token (TempPrefix<token>-) names its
// process, whose marker (live.go) says whether it lives: one flock per
// token seen, not per file. This process's files and live ones' stay; a
// dead token's go, with its marker. A file without a marked token goes
// once older than OrphanAge, or at once when alone is set (the caller
// holds the data directory's lock) and no other process holds a marker.
// It can run while this process writes, so a start-up need not wait for
// the walk of a bucket that keeps every batch's output (thousands of
// directories). It stops early, with ctx's error, when ctx ends.
func SweepDead(ctx context.Context, dir string, alone bool) (Swept, error) {
	v := newVerdicts(dir)
	defer v.release()
	if err := v.scan(); err != nil {
		return Swept{}, err
	}
	now := time.Now()
	orphans := now.Add(-OrphanAge)
	if alone && !v.othersLive {
		orphans = now
	}
	dead := func(name string) (bool, time.Time) {
		if !strings.HasPrefix(name, TempPrefix) || isLockFile(name) {
			return false, now
		}
		switch v.of(tokenOf(name)) {
		case markerDead:
			return true, now
		case markerNone:
			return true, orphans
		}
		return false, now
	}
	s, err := sweepIf(ctx, dir, dead)
	if err == nil {
		v.removeDead()
	}
	return s, err
}

// OthersLive reports whether another process holds a marker in the bucket
// dir: it may be writing there now (creating a directory to write in).
func OthersLive(dir string) (bool, error) {
	v := newVerdicts(dir)
	defer v.release()
	err := v.scan()
	return v.othersLive, err
}

// verdicts are what a sweep learnt of each token's marker; it holds the
// dead ones' locks until it ends, so that none comes back meanwhile.
type verdicts struct {
	dir        string
	seen       map[string]markerState
	held       []*os.File
	othersLive bool
}

func newVerdicts(dir string) *verdicts {
	return &verdicts{dir: dir, seen: map[string]markerState{token: markerLive}}
}

// scan probes the markers in the bucket's root: a dead process's marker
// goes even when it left no file.
func (v *verdicts) scan() error {
	ents, err := os.ReadDir(v.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range ents {
		if tok, ok := strings.CutPrefix(e.Name(), livePrefix); ok && tok != token {
			v.of(tok)
		}
	}
	return nil
}

// of is tok's verdict, probing its marker the first time.
func (v *verdicts) of(tok string) markerState {
	if tok == "" {
		return markerNone
	}
	if st, ok := v.seen[tok]; ok {
		return st
	}
	st, f, err := probeMarker(filepath.Join(v.dir, livePrefix+tok))
	if err != nil {
		st = markerLive // cannot tell: spare
	}
	if f != nil {
		v.held = append(v.held, f)
	}
	v.othersLive = v.othersLive || st == markerLive
	v.seen[tok] = st
	return st
}

// removeDead removes the dead tokens' markers, still locked: a process
// that raced to create one finds it gone and makes another (lockMarker).
func (v *verdicts) removeDead() {
	for _, f := range v.held {
		os.Remove(f.Name())
	}
}

func (v *verdicts) release() {
	for _, f := range v.held {
		f.Close()
	}
	v.held = nil
}

// sweepIf removes the files under dir whose names match and that were
// last written before the cutoff match gives for them.
func sweepIf(ctx context.Context, dir string, match func(name string) (bool, time.Time)) (Swept, error) {
	var s Swept
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return ctx.Err()
		}
		ok, cutoff := match(d.Name())
		if !ok {
			return ctx.Err()
		}
		st, err := d.Info()
		if err != nil || st.ModTime().After(cutoff) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		s.Paths = append(s.Paths, p)
		s.Bytes += st.Size()
		return nil
	})
	return s, err
}

func hasAnyPrefix(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
