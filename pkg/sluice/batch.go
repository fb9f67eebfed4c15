package sluice

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"time"
)

// State is where a batch is in the pipeline.
type State string

const (
	StateSplitting  State = "splitting"
	StateProcessing State = "processing"
	StateMerging    State = "merging"
	StateNotifying  State = "notifying"
	StateCompleted  State = "completed"
	StateFailed     State = "failed"
)

var stateRank = map[State]int{StateSplitting: 1, StateProcessing: 2, StateMerging: 3, StateNotifying: 4, StateCompleted: 5}

// CanMove reports whether a batch in state from may move to state to.
func CanMove(from, to State) bool {
	switch {
	case to == "" || from.Terminal():
		return false
	case to == StateFailed:
		return true
	}
	return stateRank[to] > stateRank[from]
}

// Final is the state a batch in state s ends in once notified: failed
// stays failed, anything else completes.
func (s State) Final() State {
	if s == StateFailed {
		return StateFailed
	}
	return StateCompleted
}

// Terminal reports whether a batch in state s will not change again.
func (s State) Terminal() bool { return s == StateCompleted || s == StateFailed }

// Batch is one input file on its way through the pipeline.
type Batch struct {
	ID     string `json:"batchId"`
	Bucket string `json:"bucket"`
	Key    string `json:"key"`  // the input object, under input/
	Name   string `json:"name"` // the file name, used for outputs
	Size   int64  `json:"size"`
	ETag   string `json:"etag"`
	// Sequence tells apart two uploads of the same object (S3's sequencer,
	// or the local generation number).
	Sequence string `json:"sequence"`
	State    State  `json:"state"`
	Reason   string `json:"reason,omitempty"` // why a failed batch failed, for a person
	// RefVersion is the reference version the batch was created with; every
	// chunk is enriched from it alone. ConfigDigest is the digest of the
	// pipeline configuration at creation, for audit.
	RefVersion string `json:"refVersion,omitempty"`
	// Feed is the configured feed the object was routed to (by its key's
	// prefix); every stage runs the batch with that feed's settings.
	// Empty in batches created before feeds: the default feed.
	Feed         string `json:"feed,omitempty"`
	ConfigDigest string `json:"configDigest,omitempty"`
	// TraceID is the OpenTelemetry trace the batch's stages record their
	// spans in (pkg/tracing), empty when tracing was off at the split.
	TraceID string `json:"traceId,omitempty"`

	Header       []string `json:"header,omitempty"` // the input's header row
	TotalChunks  int      `json:"totalChunks"`      // -1 until the split ends
	DoneChunks   int      `json:"doneChunks"`
	RowsIn       int      `json:"rowsIn"`
	RowsOut      int      `json:"rowsOut"`
	RowsRejected int      `json:"rowsRejected"`
	// Reasons counts rejected rows by rule.
	Reasons map[string]int `json:"reasons,omitempty"`

	OutputKey   string `json:"outputKey,omitempty"`
	ErrorsKey   string `json:"errorsKey,omitempty"`
	ManifestKey string `json:"manifestKey,omitempty"`
	EmailID     string `json:"emailId,omitempty"`
	// Deliveries are the batch's sinks (its feed's deliver: list when it
	// was merged), each with its state, in configuration order.
	Deliveries []Delivery `json:"deliveries,omitempty"`

	CreatedAt  time.Time `json:"createdAt"`            // the file arrived (event time)
	SplitAt    time.Time `json:"splitAt,omitzero"`     // the split ended
	ProcessAt  time.Time `json:"processedAt,omitzero"` // the last chunk was done
	MergedAt   time.Time `json:"mergedAt,omitzero"`
	NotifiedAt time.Time `json:"notifiedAt,omitzero"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// TopReasons returns the rejection rules, most frequent first.
func (b Batch) TopReasons(n int) []ReasonCount {
	out := make([]ReasonCount, 0, len(b.Reasons))
	for r, c := range b.Reasons {
		out = append(out, ReasonCount{Rule: r, Count: c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Rule < out[j].Rule
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// ReasonCount is how many rows one rule rejected.
type ReasonCount struct {
	Rule  string `json:"rule"`
	Count int    `json:"count"`
}

// BatchID derives a batch's ID from the identity of the object that started
// it, so a duplicate event for the same upload finds the same batch.
func BatchID(bucket, key, etag, sequence string) string {
	h := sha256.New()
	for _, s := range []string{bucket, key, etag, sequence} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}

// BatchFilter narrows ListBatches.
type BatchFilter struct {
	State State  // empty: any
	Key   string // empty: any input key
	Limit int    // 0: no limit
	// FieldsOnly asks for the stored fields alone: a running batch's
	// counters may then lag its progress (DynamoDB counts them in shard
	// items, which this skips reading). For callers that need only states,
	// keys, ETags or reference versions.
	FieldsOnly bool
}

// BatchUpdate holds the fields to change; zero values are left alone.
type BatchUpdate struct {
	State       State
	Reason      string
	Header      []string
	OutputKey   string
	ErrorsKey   string
	ManifestKey string
	EmailID     string
	SplitAt     time.Time
	ProcessAt   time.Time
	MergedAt    time.Time
	NotifiedAt  time.Time
	// OnlyIfNotTerminal makes the whole update a no-op on a completed or
	// failed batch (the state alone never changes once terminal).
	OnlyIfNotTerminal bool
}

// ChunkStats is what a worker reports for one chunk.
type ChunkStats struct {
	Chunk        int
	RowsIn       int
	RowsOut      int
	RowsRejected int
	Reasons      map[string]int
}

// RowError is one rejected row.
type RowError struct {
	BatchID string `json:"batchId,omitempty"`
	Chunk   int    `json:"chunk"`
	Line    int64  `json:"line"`   // physical line in the input where the row starts (header = 1)
	Column  string `json:"column"` // empty when the row as a whole is at fault
	Rule    string `json:"rule"`
	Message string `json:"message"`
	Raw     string `json:"raw"` // the row as it stood in the input, without its line ending
}

// ApplyUpdate copies the non-zero fields of u into b. Ledgers that store a
// whole batch use it, so every adapter reads BatchUpdate the same way.
//
// A batch's state only moves forward (splitting, processing, merging,
// notifying, completed), except to failed from any state that is not
// terminal; a terminal state never changes. Late or repeated messages can
// then never drag a batch back.
func ApplyUpdate(b *Batch, u BatchUpdate) {
	if u.OnlyIfNotTerminal && b.State.Terminal() {
		return
	}
	if CanMove(b.State, u.State) {
		b.State = u.State
	}
	if u.Reason != "" {
		b.Reason = u.Reason
	}
	if u.Header != nil {
		b.Header = u.Header
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&b.OutputKey, u.OutputKey)
	set(&b.ErrorsKey, u.ErrorsKey)
	set(&b.ManifestKey, u.ManifestKey)
	set(&b.EmailID, u.EmailID)
	setT := func(dst *time.Time, v time.Time) {
		if !v.IsZero() {
			*dst = v
		}
	}
	setT(&b.SplitAt, u.SplitAt)
	setT(&b.ProcessAt, u.ProcessAt)
	setT(&b.MergedAt, u.MergedAt)
	setT(&b.NotifiedAt, u.NotifiedAt)
}
