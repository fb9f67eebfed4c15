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
	return sweep(context.Background(), dir, func(name string) bool { return hasAnyPrefix(name, prefixes) }, time.Now().Add(-olderThan))
}

// SweepDead removes, under dir, the temporary files of this store's writes
// that other processes made (TempPrefix without this process's token): a
// caller holding the data directory's lock knows those processes are dead.
// It can run while this process writes, so a start-up need not wait for
// the walk of a bucket that keeps every batch's output (thousands of
// directories). It stops early, with ctx's error, when ctx ends.
func SweepDead(ctx context.Context, dir string) (Swept, error) {
	dead := func(name string) bool {
		return strings.HasPrefix(name, TempPrefix) && !strings.HasPrefix(name, tmpPrefix)
	}
	return sweep(ctx, dir, dead, time.Now())
}

// sweep removes the files under dir whose names match and that were last
// written before cutoff.
func sweep(ctx context.Context, dir string, match func(name string) bool, cutoff time.Time) (Swept, error) {
	var s Swept
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !match(d.Name()) {
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
