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

// DiskFullError is a full disk under the data directory: where, how much
// is free, and, when a batch was running, how much it needs and which batch
// to resume. It matches ErrDiskFull and unwraps to the write that failed.
type DiskFullError struct {
	Dir       string
	Free      int64 // -1 when unknown
	InputSize int64 // the batch's input, 0 when no batch was named
	Need      int64
	BatchID   string
	Cause     error
}

func (d *DiskFullError) Is(target error) bool { return target == ErrDiskFull }
func (d *DiskFullError) Unwrap() error        { return d.Cause }

func (d *DiskFullError) Error() string {
	msg := fmt.Sprintf("%v in %s", ErrDiskFull, d.Dir)
	if d.Free >= 0 {
		msg += fmt.Sprintf(" (%s free", human(d.Free))
		if d.Need > 0 {
			msg += fmt.Sprintf("; a batch of this %s file needs up to about %s while it runs", human(d.InputSize), human(d.Need))
		}
		msg += ")"
	}
	msg += "; free space (`sluice gc` removes what retention allows) and run the same command again"
	if d.BatchID != "" {
		msg += " to resume batch " + d.BatchID
	}
	return fmt.Sprintf("%s (cause: %v)", msg, d.Cause)
}

// diskFull turns a no-space error into a DiskFullError naming the data
// directory and the space free now.
func (e *Engine) diskFull(err error) *DiskFullError {
	var d *DiskFullError
	if errors.As(err, &d) {
		return d
	}
	d = &DiskFullError{Dir: e.Dir, Free: -1, Cause: err}
	var st syscall.Statfs_t
	if syscall.Statfs(e.Dir, &st) == nil {
		d.Free = int64(st.Bavail) * int64(st.Bsize)
	}
	return d
}

// forBatch adds what a batch of inputSize bytes needs and which batch to
// resume. While it merges, a batch holds its input's copy, its chunks, the
// output and error parts and the merged output: four times the input, and
// up to six when enrichment widens every row (1M seed rows: 72 MB in, 116 MB
// out). The intermediates go once it ends (retention).
func (d *DiskFullError) forBatch(id string, inputSize int64, enriches bool) *DiskFullError {
	d.BatchID, d.InputSize, d.Need = id, inputSize, 4*inputSize
	if enriches {
		d.Need = 6 * inputSize
	}
	return d
}

// orDiskFull turns a no-space error of batchID's run on the file at path
// into a DiskFullError that says what the batch needs; others pass as they
// are.
func (e *Engine) orDiskFull(err error, batchID, path string) error {
	if !noSpace(err) {
		return err
	}
	size := int64(0)
	if st, serr := os.Stat(path); serr == nil {
		size = st.Size()
	}
	return e.diskFull(err).forBatch(batchID, size, e.Config.Enriches())
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
