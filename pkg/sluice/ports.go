package sluice

import (
	"context"
	"io"
	"time"
)

// BlobInfo describes one stored object.
type BlobInfo struct {
	Key      string
	Size     int64
	ETag     string
	Modified time.Time
}

// BlobStore is one bucket: S3 on AWS, a directory locally. Every method
// validates its keys with ValidateKey.
type BlobStore interface {
	// Bucket names the bucket, as it appears in object-created events.
	Bucket() string
	// Get streams an object; the caller closes it. A missing object is ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange streams n bytes of an object from offset off (fewer when the
	// object ends first), so a worker reads its chunk straight from the
	// input. A missing object is ErrNotFound; off past the end is an error.
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	// Put stores everything r yields under key, replacing what was there.
	// Readers see either the old or the new object, never a partial one.
	Put(ctx context.Context, key string, r io.Reader) (BlobInfo, error)
	// Stat describes an object without reading it.
	Stat(ctx context.Context, key string) (BlobInfo, error)
	// List returns every object whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]BlobInfo, error)
	// Copy copies src to dst inside the bucket.
	Copy(ctx context.Context, src, dst string) error
	// Delete removes an object; deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// Link returns a URL a person can follow to read the object, valid for
	// about ttl where the store can limit it, and the time it stops working
	// (zero when it never does).
	Link(ctx context.Context, key string, ttl time.Duration) (url string, expires time.Time, err error)
}

// Composer is a BlobStore that can assemble an object from a prefix of
// bytes and other objects without the caller moving their bytes: S3 with
// UploadPartCopy, a directory with copy_file_range. The merge uses it
// where the store offers it.
type Composer interface {
	// Compose stores head followed by every object in srcs, in order,
	// under dst, replacing it atomically as Put does. sha256 is the hex
	// SHA-256 of what it stored when the store computed it on the way
	// (empty when it did not: the caller reads the object to know it).
	Compose(ctx context.Context, dst string, head []byte, srcs []string) (info BlobInfo, sha256 string, err error)
}

// Message is one received queue message.
type Message struct {
	ID      string
	Body    []byte
	Receipt string // opaque handle for Delete, Extend and DeadLetter
	// ReceiveCount is how many times the message has been received,
	// this time included.
	ReceiveCount int
	// SentAt is when the message was first sent, where the queue knows.
	SentAt time.Time
	// Trace is the W3C traceparent of the span that sent the message, ""
	// when tracing was off: adapters carry it beside the body (an SQS
	// message attribute, a SQLite column) so the body stays unchanged.
	Trace string
}

// QueueDepth is a snapshot of a queue's size.
type QueueDepth struct {
	Visible  int // waiting to be received
	InFlight int // received, not yet deleted, still invisible
	Delayed  int // sent or released with a delay that has not passed
}

// Queue is an at-least-once message queue with visibility timeouts, as SQS
// is. A message received more than the queue's max-receive count without
// being deleted moves to the queue's dead-letter queue.
type Queue interface {
	Name() string
	Send(ctx context.Context, body []byte) error
	// SendBatch sends many messages; it may split them into several calls.
	SendBatch(ctx context.Context, bodies [][]byte) error
	// Receive waits up to wait for at least one message and returns at most
	// max of them, each invisible to other receivers for visibility.
	Receive(ctx context.Context, max int, visibility, wait time.Duration) ([]Message, error)
	// Extend sets a received message's remaining invisibility to d: a
	// heartbeat while work goes on, or a delayed release after a failure.
	Extend(ctx context.Context, receipt string, d time.Duration) error
	// Delete acknowledges a received message.
	Delete(ctx context.Context, receipt string) error
	// DeadLetter moves a received message to the dead-letter queue at once,
	// with a reason an operator can read, for messages that can never succeed.
	DeadLetter(ctx context.Context, m Message, reason string) error
	Depth(ctx context.Context) (QueueDepth, error)

	// The operator's side of the dead-letter queue. These two are on the
	// port itself, rather than a DeadLetters() Queue accessor, because a
	// dead-letter queue is not a queue anyone consumes: what an operator
	// needs is to read it without taking anything, and to send it all back.

	// PeekDead lists up to n messages of the dead-letter queue without
	// taking them: they stay there, and are at once visible again to
	// another PeekDead or to Redrive.
	PeekDead(ctx context.Context, n int) ([]DeadMessage, error)
	// Redrive moves every visible message of the dead-letter queue back to
	// this queue as a fresh message (receive count 0), and returns how many
	// it moved. A crash part-way may send one twice, never lose one.
	Redrive(ctx context.Context) (int, error)
}

// DeadMessage is a message in a queue's dead-letter queue, as an operator
// sees it.
type DeadMessage struct {
	ID   string
	Body []byte
	// Reason says why it was dead-lettered: DeadLetter's reason, or that
	// the queue's max receive count was reached.
	Reason string
	SentAt time.Time
}

// Ledger holds the state of every batch: the batch record, the chunk
// completion counter, and the rejected rows.
type Ledger interface {
	// CreateBatch stores b unless a batch with its ID exists, and returns the
	// stored batch and whether this call created it.
	CreateBatch(ctx context.Context, b Batch) (Batch, bool, error)
	GetBatch(ctx context.Context, id string) (Batch, error)
	// ListBatches returns batches, newest first.
	ListBatches(ctx context.Context, f BatchFilter) ([]Batch, error)
	// CountByState returns how many batches are in each state (states
	// with none may be left out). The counts are kept as batches change
	// state, so the cost does not grow with the ledger's history; metrics
	// sample them every few seconds.
	CountByState(ctx context.Context) (map[State]int, error)
	// UpdateBatch applies the non-zero fields of u to the batch.
	UpdateBatch(ctx context.Context, id string, u BatchUpdate) (Batch, error)
	// SetTotal records how many chunks the batch has and how many rows it
	// read. The result says whether every chunk is already done.
	SetTotal(ctx context.Context, id string, chunks, rows int) (Completion, error)
	// ChunkDone counts a chunk once, however often it is called, adding its
	// stats to the batch.
	ChunkDone(ctx context.Context, id string, s ChunkStats) (Completion, error)
	// ScanRangeDone counts range r of a batch whose split was scanned by
	// separate tasks in n ranges, once however often it is called. Total
	// is n; Completed is true only for the single call that counted the
	// last range: the caller that sees it stitches the ranges.
	ScanRangeDone(ctx context.Context, id string, r, n int) (Completion, error)
	// AddRejects stores rejected rows; storing the same (batch, line) twice
	// keeps one.
	AddRejects(ctx context.Context, id string, rows []RowError) error
	// Rejects pages through a batch's rejected rows in line order, starting
	// after line afterLine.
	Rejects(ctx context.Context, id string, afterLine int64, limit int) ([]RowError, error)

	// InitDeliveries gives the batch its sinks, each pending, unless it
	// has sinks already (a merge that runs again keeps the first list),
	// and returns the batch's deliveries.
	InitDeliveries(ctx context.Context, id string, sinks []Delivery) ([]Delivery, error)
	// RecordDelivery records the outcome of a pending sink's delivery:
	// d.State (delivered or delivery_failed), d.Reason, d.At, and adds
	// d.Attempts. Only a pending sink changes (changed says whether this
	// call changed it); the stored delivery is returned either way. An
	// unknown batch or sink is ErrNotFound.
	RecordDelivery(ctx context.Context, id string, d Delivery) (stored Delivery, changed bool, err error)
	// ResetDelivery puts a sink back to pending, clearing its reason: from
	// delivery_failed, or from any state when force is set.
	ResetDelivery(ctx context.Context, id, sink string, force bool) (stored Delivery, changed bool, err error)
}

// ChunkChecker is a Ledger that can say whether a chunk is counted done.
// A worker given a chunk message again (a redelivery, a duplicate send)
// asks first, and acknowledges a counted chunk without re-enriching it or
// rewriting its part: the part the merge reads stays the one that was
// counted. Optional, so wrappers and test ledgers need not implement it.
type ChunkChecker interface {
	ChunkCounted(ctx context.Context, id string, chunk int) (bool, error)
}

// Completion is the chunk counter's state after an update.
type Completion struct {
	// Counted is true when this call counted the chunk (false for a repeat).
	Counted bool
	// Complete is true when the total is known and every chunk is done.
	Complete bool
	// Completed is true only for the single call that made Complete true:
	// the caller that sees it sends the merge message.
	Completed bool
	// Done and Total are the counter as this call saw it. A ledger that
	// does not read the whole counter on every call (the DynamoDB ledger's
	// sharded one) may report only part of Done, and Total -1, in a result
	// that is neither Complete nor Completed; GetBatch has the full count.
	Done  int
	Total int // -1 while unknown
}

// Reference is one version of the reference data: immutable once
// published, so every lookup of a batch sees the same rows.
type Reference interface {
	// Columns names the reference columns, the key column first.
	Columns(ctx context.Context) ([]string, error)
	// Lookup finds many keys at once. vals[i] holds the non-key columns of
	// keys[i] in Columns order, or nil when the key is unknown.
	Lookup(ctx context.Context, keys []string) (vals [][]string, err error)
}

// PackedReference is a Reference that can also return a chunk's values
// packed in one reused buffer: a worker appends them to its output without
// a string per value, which at 10M rows was most of a lookup's cost in
// allocation and garbage collection (pkg/refstore implements it; the other
// catalogs need only Lookup).
type PackedReference interface {
	Reference
	// LookupPacked finds keys as Lookup does. It resets into and fills it:
	// one span per key, and in Buf each found key's non-key columns in
	// Columns order, each as a uvarint byte length then the bytes.
	LookupPacked(ctx context.Context, keys []string, into *PackedValues) error
}

// PackedValues are the values LookupPacked found, reused call to call.
type PackedValues struct {
	Buf   []byte
	Spans []PackedSpan // one per key, in the keys' order
}

// PackedSpan is where one key's packed values lie in PackedValues.Buf.
type PackedSpan struct {
	Start, End int
	Found      bool // false: the key is unknown
}

// RefVersion describes one published reference version.
type RefVersion struct {
	// ID is the load time then the content hash's head, so IDs sort by age.
	ID       string    `json:"id"`
	Hash     string    `json:"sha256"` // of the whole source file
	Source   string    `json:"source,omitempty"`
	Columns  []string  `json:"columns"`
	Rows     int       `json:"rows"`
	LoadedAt time.Time `json:"loadedAt"`
}

// RefSource is what a load reads: the rows, and the identity of the file
// they come from (computed by the caller before the load starts, so the
// version's ID can key its rows).
type RefSource struct {
	ID      string // the new version's ID
	Hash    string
	Name    string
	Columns []string
	// Next yields the rows, the key first; io.EOF after the last.
	Next func() ([]string, error)
}

// Catalog holds the reference versions. Batches pin the current version
// when they are created and look up only that one, so a load never changes
// a batch in flight.
type Catalog interface {
	// Current is the version new batches use; ErrNotFound before any load.
	Current(ctx context.Context) (RefVersion, error)
	// Version opens one version for lookups; ErrNotFound once deleted.
	Version(ctx context.Context, id string) (Reference, error)
	// Versions lists the published versions, oldest first.
	Versions(ctx context.Context) ([]RefVersion, error)
	// Delete removes a version that is not current.
	Delete(ctx context.Context, id string) error
	CatalogLoader
}

// CatalogLoader publishes new reference versions.
type CatalogLoader interface {
	// Load writes src's rows as version src.ID and, once every row is
	// written, makes it current. A key that appears twice with equal
	// values is kept once; with different values the load fails.
	Load(ctx context.Context, src RefSource) (RefVersion, error)
}

// Email is one message to people.
type Email struct {
	From    string
	To      []string
	Subject string
	Text    string
	HTML    string
	// IdempotencyKey names the email for de-duplication where the mailer can
	// do it (the local outbox writes one file per key).
	IdempotencyKey string
}

// Mailer sends email.
type Mailer interface {
	// Send sends e and returns the mail system's ID for it.
	Send(ctx context.Context, e Email) (string, error)
}

// BatchFieldsReader is an optional Ledger method for callers that need a
// batch's fields and state but not its progress: a ledger whose GetBatch
// adds up counters kept apart (the DynamoDB ledger's sharded chunk counter
// reads the shards in flight) answers it with one read. Its DoneChunks and
// row counters may lag GetBatch's while the batch runs; they are the same
// once it is complete.
type BatchFieldsReader interface {
	BatchFields(ctx context.Context, id string) (Batch, error)
}

// GetBatchFields reads a batch through BatchFields where l has it, else
// GetBatch: the worker calls it once per chunk, where extra reads cost.
func GetBatchFields(ctx context.Context, l Ledger, id string) (Batch, error) {
	if r, ok := l.(BatchFieldsReader); ok {
		return r.BatchFields(ctx, id)
	}
	return l.GetBatch(ctx, id)
}
