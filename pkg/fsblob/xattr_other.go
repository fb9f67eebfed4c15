//go:build !linux

package fsblob

import "errors"

func setxattr(path, name string, v []byte) error { return errors.ErrUnsupported }

func getxattr(path, name string) ([]byte, error) { return nil, errors.ErrUnsupported }
