package sluice

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// ValidateKey refuses object keys that could escape a bucket once turned into
// a path, or that carry characters no person meant to put in a name: empty
// keys, absolute keys, `..` segments, backslashes, control characters and
// invalid UTF-8. S3 itself would accept most of these; we never need them.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > 1024:
		return fmt.Errorf("%w: longer than 1024 bytes", ErrInvalidKey)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidKey, key)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("%w: %q is absolute", ErrInvalidKey, key)
	case strings.Contains(key, `\`):
		return fmt.Errorf("%w: %q contains a backslash", ErrInvalidKey, key)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q contains a control character", ErrInvalidKey, key)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == ".." || seg == "." {
			return fmt.Errorf("%w: %q contains a %q segment", ErrInvalidKey, key, seg)
		}
	}
	return nil
}
