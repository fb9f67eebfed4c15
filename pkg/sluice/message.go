package sluice

import (
	"encoding/json"
	"fmt"
)

// MessageVersion is the version of the stage messages this code writes and
// reads. A message with another version is permanently bad.
const MessageVersion = 1

// ObjectCreated tells the splitter that an input object arrived. On AWS it
// is decoded from an S3 event notification; locally the CLI sends it.
type ObjectCreated struct {
	Version  int    `json:"v"`
	Bucket   string `json:"bucket"`
	Key      string `json:"key"`
	Size     int64  `json:"size"`
	ETag     string `json:"etag"`
	Sequence string `json:"sequence"`
	// EventTime is when the object was created (RFC 3339), where known.
	EventTime string `json:"eventTime,omitempty"`
	// Name is the file's name when the key holds a bounded form of it (a
	// local submission of a long name); empty: the key's last element.
	Name string `json:"name,omitempty"`
}

// ChunkReady tells a worker that a chunk is ready. A chunk is either a
// byte range of the input (Input, Offset, Length: its records, without the
// header, which the batch holds) or an object of its own (Key: the header
// and then its records), when the input cannot be read by ranges (a
// compressed one) or the configuration asks for copies (copyChunks).
type ChunkReady struct {
	Version int    `json:"v"`
	BatchID string `json:"batchId"`
	Chunk   int    `json:"chunk"`
	Key     string `json:"key,omitempty"`
	// Input is the object the range is read from: the archived input,
	// which stays until the batch's retention ends.
	Input string `json:"input,omitempty"`
	// InputETag is Input's ETag when the split cut it: a worker reads the
	// range only from that object, never from another file stored under
	// the same key since ("" in messages from before it: not checked).
	InputETag string `json:"inputEtag,omitempty"`
	Offset    int64  `json:"offset,omitempty"`
	Length    int64  `json:"length,omitempty"`
	// FirstLine is the input line on which the chunk's first row starts.
	FirstLine int64 `json:"firstLine"`
	Rows      int   `json:"rows"`
}

// KindScanRange marks a ScanRange message on the ingest queue, whose other
// messages are object-created events.
const KindScanRange = "scanRange"

// ScanRange tells a split task to scan one byte range of a huge input (the
// archived object Input) and count it; the task that counts the last of
// the Ranges ranges stitches them into chunks. Start is where the records
// after the header begin, on line Line; Size is the object's size.
type ScanRange struct {
	Version int    `json:"v"`
	Kind    string `json:"kind"`
	BatchID string `json:"batchId"`
	Input   string `json:"input"`
	Range   int    `json:"range"`
	Ranges  int    `json:"ranges"`
	Offset  int64  `json:"offset"`
	Length  int64  `json:"length"`
	Start   int64  `json:"start"`
	Line    int64  `json:"line"`
	Size    int64  `json:"size"`
	// ETag is Input's ETag at the fan-out: every range, and the chunks the
	// stitch cuts, are read only from that object ("" in older messages).
	ETag string `json:"etag,omitempty"`
	// Delim, ChunkRows and MaxLineBytes are the feed's settings at the
	// fan-out: every range is summarized, and the ranges stitched and cut
	// into chunks, with the settings the header was read with, even if
	// the configuration changes while the split runs (0 or "" in older
	// messages: the running configuration's).
	Delim        string `json:"delim,omitempty"`
	ChunkRows    int    `json:"chunkRows,omitempty"`
	MaxLineBytes int    `json:"maxLineBytes,omitempty"`
}

// MaxScanRanges bounds the ranges of one scan split: the ledger keeps the
// set of ranges counted on the batch item while it splits (4 to 6 bytes a
// range, so at most about 100 KB of DynamoDB's 400 KB item), and each
// range is a message, a ranged read, a summary object and a count. The
// configuration refuses limits.maxFileBytes / scanSplit.rangeBytes above it.
const MaxScanRanges = 16_384

// IsScanRange reports whether body is a ScanRange message.
func IsScanRange(body []byte) bool {
	var k struct {
		Kind string `json:"kind"`
	}
	return json.Unmarshal(body, &k) == nil && k.Kind == KindScanRange
}

// BatchReady tells the merger, then the notifier, that a batch moved on.
type BatchReady struct {
	Version int    `json:"v"`
	BatchID string `json:"batchId"`
}

// Source names what the worker reads, for messages and logs.
func (c ChunkReady) Source() string {
	if c.Key != "" {
		return c.Key
	}
	return fmt.Sprintf("%s bytes %d-%d", c.Input, c.Offset, c.Offset+c.Length)
}

// Encode marshals a stage message.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sluice: encoding %T: %v", v, err)) // only plain structs come here
	}
	return b
}

// Decode unmarshals a stage message and checks its version. Every failure is
// permanent: the same bytes will never decode.
func Decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return PermanentReason(ReasonMalformed, fmt.Errorf("malformed message: %v", err))
	}
	var ver struct {
		V int `json:"v"`
	}
	_ = json.Unmarshal(body, &ver)
	if ver.V != MessageVersion {
		return PermanentReason(ReasonUnknownVersion, fmt.Errorf("unknown message version %d (this build reads version %d)", ver.V, MessageVersion))
	}
	return nil
}
