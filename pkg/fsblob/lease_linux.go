package fsblob

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// readLease takes a read lease on f (fcntl F_SETLEASE, F_RDLCK). The
// kernel grants it only while no descriptor anywhere has the file open for
// writing (a writable shared mapping counts), and while it is held an
// open for writing waits for it (up to /proc/sys/fs/lease-break-time).
// So while the lease holds, the file's bytes cannot change: no write can
// be in progress, not even one whose writer was descheduled in the middle
// of it (which size and modification time cannot show: the kernel stamps
// the time when a write starts).
//
// It returns held=false with a nil error where leases are unavailable
// (a file this user does not own, a file system without leases), and
// errOpenForWriting when some program has the file open for writing.
func readLease(f *os.File) (held bool, err error) {
	_, err = unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_RDLCK)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EBUSY):
		return false, errOpenForWriting
	default:
		return false, nil
	}
}

// releaseLease gives the lease up (closing the file would too).
func releaseLease(f *os.File) {
	unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_UNLCK)
}
