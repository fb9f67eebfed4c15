//go:build !unix

package fsblob

import "os"

// Without flock the renames are ordered against DeleteIf in this process
// only (placeMu); another process writing the same bucket is not covered.
func lockPlace(string, bool) (*os.File, error) { return nil, nil }
