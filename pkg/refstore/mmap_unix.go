//go:build unix

package refstore

import (
	"os"
	"syscall"
)

type mapping struct{ bytes []byte }

func mapFile(path string) (*mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return &mapping{}, nil
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &mapping{bytes: b}, nil
}

func (m *mapping) close() error {
	if m.bytes == nil {
		return nil
	}
	return syscall.Munmap(m.bytes)
}
