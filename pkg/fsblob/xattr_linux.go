package fsblob

import (
	"os"

	"golang.org/x/sys/unix"
)

func setxattr(path, name string, v []byte) error { return unix.Setxattr(path, name, v, 0) }

func getxattr(path, name string) ([]byte, error) {
	buf := make([]byte, 128) // the ETag: "sha256-", 64 hex digits, "-", the size
	n, err := unix.Getxattr(path, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// fgetxattr is getxattr of an open file: the attribute of the file this
// descriptor holds, whatever its path names by now.
func fgetxattr(f *os.File, name string) ([]byte, error) {
	buf := make([]byte, 128)
	n, err := unix.Fgetxattr(int(f.Fd()), name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}
