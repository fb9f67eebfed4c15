package fsblob

import "golang.org/x/sys/unix"

func setxattr(path, name string, v []byte) error { return unix.Setxattr(path, name, v, 0) }

func getxattr(path, name string) ([]byte, error) {
	buf := make([]byte, 128) // the ETag: "sha256-", 64 hex digits, "-", the size
	n, err := unix.Getxattr(path, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}
