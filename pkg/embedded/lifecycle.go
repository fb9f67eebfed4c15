package embedded

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// CheckInput refuses an input that is not a regular file before anything
// opens it: opening a FIFO blocks until a writer comes, and reading a
// device such as /dev/zero never ends, and either would hold the data
// directory's lock with no way to stop. A symbolic link to a regular file
// is fine.
func CheckInput(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("input: %w", err)
	}
	switch m := st.Mode(); {
	case m.IsRegular():
		return nil
	case m.IsDir():
		return fmt.Errorf("input %s is a directory, not a file", path)
	case m&os.ModeNamedPipe != 0:
		return fmt.Errorf("input %s is a named pipe (FIFO); sluice reads a regular file whose size is known: save the data to a file first", path)
	case m&(os.ModeDevice|os.ModeCharDevice) != 0:
		return fmt.Errorf("input %s is a device, not a regular file; sluice reads a regular file whose size is known", path)
	default:
		return fmt.Errorf("input %s is not a regular file (%s)", path, m.Type())
	}
}

// noSpace reports whether err says a disk is full: ENOSPC or EDQUOT from a
// file write, or SQLite's "database or disk is full". Retrying cannot fix
// that until a person frees space, so the engine stops instead.
func noSpace(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "no space left on device") || strings.Contains(s, "disk is full")
}

// ErrDiskFull means the data directory's disk filled up; the batch is
// left as it was, to resume once space is freed.
var ErrDiskFull = errors.New("the disk is full")

// diskFull turns a no-space error into one that names the directory, the
// space free and about how much a batch of inputSize bytes needs, and says
// how to go on.
func (e *Engine) diskFull(err error, batchID string, inputSize int64) error {
	free := int64(-1)
	var st syscall.Statfs_t
	if syscall.Statfs(e.Dir, &st) == nil {
		free = int64(st.Bavail) * int64(st.Bsize)
	}
	// While it merges, a batch holds its input's copy, its chunks, the
	// output and error parts and the merged output: four times the input,
	// and up to six when enrichment widens every row (1M seed rows: 72 MB
	// in, 116 MB out). The intermediates go once it ends (retention).
	need := 4 * inputSize
	if e.Config.Enriches() {
		need = 6 * inputSize
	}
	msg := "in " + e.Dir
	if free >= 0 {
		msg += fmt.Sprintf(" (%s free", human(free))
		if need > 0 {
			msg += fmt.Sprintf("; a batch of this %s file needs up to about %s while it runs", human(inputSize), human(need))
		}
		msg += ")"
	}
	msg += "; free space (`sluice gc` removes what retention allows) and run the same command again"
	if batchID != "" {
		msg += " to resume batch " + batchID
	}
	return fmt.Errorf("%w %s (cause: %v)", ErrDiskFull, msg, err)
}

// human writes a byte count with a binary unit.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
