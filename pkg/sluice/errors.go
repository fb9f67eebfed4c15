package sluice

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned (wrapped) by every port when the thing asked for
// does not exist.
var ErrNotFound = errors.New("not found")

// ErrInvalidKey is returned when an object key could escape its bucket or
// holds characters that cannot become a path.
var ErrInvalidKey = errors.New("invalid object key")

// ErrETagMismatch is returned (wrapped) by a conditional blob call
// (GetRangeIf, CopyIf, DeleteIf) when the object holds another ETag than
// the one the call named: S3's 412 PreconditionFailed. The object was
// neither read, copied nor deleted.
var ErrETagMismatch = errors.New("the object's ETag is not the one expected")

// permanentError marks an error that retrying cannot fix: bad input, an
// unknown message version, a missing object. The consumer runtime sends such
// a message to the dead-letter queue at once instead of burning retries.
type permanentError struct {
	err    error
	reason string
}

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// Permanentf is fmt.Errorf followed by Permanent.
func Permanentf(format string, args ...any) error {
	return Permanent(fmt.Errorf(format, args...))
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// Reasons a message can never succeed, bounded so they can label metrics.
const (
	ReasonMalformed      = "malformed"       // not JSON, or not the expected shape
	ReasonUnknownVersion = "unknown_version" // a message version this build does not read
	ReasonUnknownBatch   = "unknown_batch"   // a message for a batch that does not exist
	ReasonMissingObject  = "missing_object"  // the object the message names is gone
	ReasonInvalidKey     = "invalid_key"     // an object key that could escape its bucket
	ReasonBadState       = "bad_state"       // a message that does not fit the batch's state
	ReasonOther          = "other"
)

// PermanentReason is Permanent with a reason from the list above.
func PermanentReason(reason string, err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err, reason: reason}
}

// ReasonOf returns the reason of a permanent error ("other" when none was
// given), or "" for an error that is not permanent.
func ReasonOf(err error) string {
	var p *permanentError
	if !errors.As(err, &p) {
		return ""
	}
	if p.reason == "" {
		return ReasonOther
	}
	return p.reason
}
