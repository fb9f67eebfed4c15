package fsblob

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// TempPrefix starts the name of every file Put is still writing. A process
// killed mid-write leaves such a file behind; SweepTemp removes it.
const TempPrefix = tmpPrefix

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
	var s Swept
	cutoff := time.Now().Add(-olderThan)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !hasAnyPrefix(d.Name(), prefixes) {
			return nil
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
