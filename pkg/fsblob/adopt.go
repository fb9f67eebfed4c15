package fsblob

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Adopt moves the file at path, written in place by its owner (the
// spool, pkg/spool) inside this bucket's file system, to key, with the
// ETag Put would give it: "sha256-<sum>-<size>" from the SHA-256 the owner
// computed while writing, so nothing reads the file again to hash it. The
// rename is atomic: a reader sees no object or the whole one.
func (s *Store) Adopt(path, key string, sum []byte, size int64) error {
	p, err := s.Path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	if err := os.Chmod(path, FileMode); err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	setETag(path, "sha256-"+hex.EncodeToString(sum)+"-"+strconv.FormatInt(size, 16))
	if err := s.place(path, p); err != nil { // ordered against DeleteIf (cond.go)
		return fmt.Errorf("fsblob: %w", err)
	}
	return nil
}
