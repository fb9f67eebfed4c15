//go:build !linux

package fsblob

import (
	"errors"
	"os"
)

func setxattr(path, name string, v []byte) error { return errors.ErrUnsupported }

func getxattr(path, name string) ([]byte, error) { return nil, errors.ErrUnsupported }

func fgetxattr(f *os.File, name string) ([]byte, error) { return nil, errors.ErrUnsupported }
