// Package spool writes a batch's plain CSV output and error report in
// place, in chunk order, as the embedded engine's workers finish, so the
// merge moves no bytes: it finalises two files that are already whole
// (pipeline.Spool; docs/exactly-once.md, "The spool").
//
// Each batch has two files under pipeline.SpoolPrefix, started with their
// headers. A chunk's bytes go at the recorded end of each file (a pwrite at
// a known offset, so a rewrite after a crash puts the same bytes at the
// same place) and into the running SHA-256 of each; then the state (next
// chunk, both lengths, both hash states) and the chunk's hash states
// before and after it are recorded in the ledger's database, before the
// worker records the chunk's rejects and count. A redelivered chunk
// already in the spool is compared with them: other bytes fail the batch. After a
// restart the files are cut back to the recorded lengths (never extended:
// a file shorter than recorded fails the batch). A chunk whose
// predecessors do not arrive within Wait is stored as parts, as without a
// spool, and copied in when the spool reaches it.
package spool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/pipeline"
)

// States keeps one record per batch (pkg/sqlite's Ledger). SaveSpool
// records the state and, when chunk ≥ 0, that chunk's record (its hash
// states before and after, chunkRecord), at once.
type States interface {
	LoadSpool(ctx context.Context, id string) (data []byte, ok bool, err error)
	SaveSpool(ctx context.Context, id string, data []byte, chunk int, sum []byte) error
	SpoolChunk(ctx context.Context, id string, chunk int) (sum []byte, ok bool, err error)
	DeleteSpool(ctx context.Context, id string) error
}

// DefaultWait is how long a chunk waits for its predecessors before it
// falls back to parts: far above a chunk's processing time (milliseconds),
// far below the queue's visibility timeout.
const DefaultWait = 2 * time.Second

// Spool is the pipeline.Spool of one data directory. One process owns it
// (the embedded engine's directory lock): the in-memory state of a batch
// is the recorded one plus nothing unrecorded. It keeps an entry only for
// a batch being spooled, and its files open only during a call.
type Spool struct {
	Blobs  *fsblob.Store
	States States
	// Wait bounds how long Append waits for the chunks before its own;
	// zero means DefaultWait.
	Wait time.Duration
	// DropFault, when set, is called inside Drop between the removal of
	// the files and of the state (crash tests).
	DropFault func(batchID string) error

	mu      sync.Mutex
	batches map[string]*batch
}

var _ pipeline.Spool = (*Spool)(nil)

// New returns the spool of the bucket blobs, its state kept in states.
func New(blobs *fsblob.Store, states States) *Spool {
	return &Spool{Blobs: blobs, States: states, batches: map[string]*batch{}}
}

// state is what is recorded after every advance.
type state struct {
	Next  int       `json:"next"`  // the first chunk not in the files
	Len   [2]int64  `json:"len"`   // the files' lengths, headers included
	Hash  [2][]byte `json:"hash"`  // the running SHA-256 states (BinaryMarshaler)
	Final bool      `json:"final"` // digests recorded; the files move to their keys
	Sum   [2]string `json:"sum,omitempty"`
}

// batch is one batch's spool in memory. mu serialises every write: the
// files grow in chunk order anyway. ended is set when the batch was
// dropped, or has no spool and may not start one (merged or failed): the
// entry is then out of the map, and a caller still holding it stores
// parts.
type batch struct {
	mu      sync.Mutex
	loaded  bool
	ended   bool
	st      state
	f       [2]*os.File
	h       [2]hash.Hash
	changed chan struct{} // closed and replaced whenever the spool advances or is dropped
}

func (s *Spool) batch(id string) *batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.batches == nil {
		s.batches = map[string]*batch{}
	}
	b, ok := s.batches[id]
	if !ok {
		b = &batch{changed: make(chan struct{})}
		s.batches[id] = b
	}
	return b
}

func (s *Spool) wait() time.Duration {
	if s.Wait > 0 {
		return s.Wait
	}
	return DefaultWait
}

// Append implements pipeline.Spool.
func (s *Spool) Append(ctx context.Context, sb pipeline.SpoolBatch, chunk int, out, errs []byte) (bool, error) {
	b := s.batch(sb.ID)
	timer := time.NewTimer(s.wait())
	defer timer.Stop()
	for {
		b.mu.Lock()
		done, ok, err := s.try(ctx, b, sb, chunk, [2][]byte{out, errs})
		s.release(sb.ID, b)
		ch := b.changed
		b.mu.Unlock()
		if done {
			return ok, err
		}
		select {
		case <-ch:
		case <-timer.C:
			return false, nil // the predecessors are late: parts, caught up later
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// try appends chunk if the spool has reached it; done is false when it
// must wait for the chunks before it.
func (s *Spool) try(ctx context.Context, b *batch, sb pipeline.SpoolBatch, chunk int, data [2][]byte) (done, ok bool, err error) {
	if err := s.open(ctx, b, sb); err != nil || b.ended {
		return true, false, err
	}
	if !b.st.Final && b.st.Next < chunk {
		if err := s.catchUp(ctx, b, sb, chunk); err != nil {
			return true, false, err
		}
	}
	switch {
	case b.st.Final || b.st.Next > chunk:
		// In already: nothing rewritten, but the bytes must be the ones
		// this attempt will count.
		return true, true, s.same(ctx, sb, chunk, data)
	case b.st.Next < chunk:
		return false, false, nil
	}
	if err := s.write(ctx, b, sb, data); err != nil {
		return true, false, err
	}
	return true, true, nil
}

// same checks a chunk already in the spool against the running SHA-256
// states recorded around it when its bytes went in: the states before,
// fed this attempt's bytes, must give the states after. That hashes only
// on a redelivery; the normal path records states it marshals anyway.
// None recorded (a state from before these records) is taken as the same.
func (s *Spool) same(ctx context.Context, sb pipeline.SpoolBatch, chunk int, data [2][]byte) error {
	js, ok, err := s.States.SpoolChunk(ctx, sb.ID, chunk)
	if err != nil || !ok {
		return err
	}
	rec, err := parseChunkRecord(js)
	if err != nil {
		return fmt.Errorf("spool: batch %s: chunk %d's record: %w", sb.ID, chunk, err)
	}
	for i, d := range data {
		h := sha256.New()
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(rec.Before[i]); err != nil {
			return fmt.Errorf("spool: batch %s: chunk %d's record: %w", sb.ID, chunk, err)
		}
		h.Write(d)
		after, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if !bytes.Equal(after, rec.After[i]) {
			return &pipeline.SpoolError{Reason: fmt.Sprintf("chunk %d gave other bytes on retry than the ones already written; was the configuration changed while the batch ran?", chunk)}
		}
	}
	return nil
}

// chunkRecord is what is recorded of each chunk put in the spool: both
// files' running SHA-256 states before and after its bytes, so that a
// redelivered chunk's bytes can be compared with them (same). Stored as
// the four marshalled states, each after its length in one byte: no JSON
// on the write path.
type chunkRecord struct {
	Before, After [2][]byte
}

func (r chunkRecord) append(b []byte) []byte {
	for _, m := range [][]byte{r.Before[0], r.Before[1], r.After[0], r.After[1]} {
		b = append(append(b, byte(len(m))), m...)
	}
	return b
}

func parseChunkRecord(b []byte) (r chunkRecord, err error) {
	for _, m := range []*[]byte{&r.Before[0], &r.Before[1], &r.After[0], &r.After[1]} {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return r, errors.New("cut short")
		}
		*m, b = b[1:1+int(b[0])], b[1+int(b[0]):]
	}
	return r, nil
}

// Parted implements pipeline.Spool.
func (s *Spool) Parted(ctx context.Context, sb pipeline.SpoolBatch, chunk int) error {
	b := s.batch(sb.ID)
	b.mu.Lock()
	defer b.mu.Unlock()
	defer s.release(sb.ID, b)
	if err := s.open(ctx, b, sb); err != nil || b.ended {
		return err
	}
	if b.st.Final || b.st.Next != chunk {
		return nil // not the one the spool waits for: it is reached in turn
	}
	return s.catchUp(ctx, b, sb, -1)
}

// catchUp copies in the parts of the chunks from Next on while they exist,
// up to (not including) chunk stop; stop < 0: as far as parts go.
func (s *Spool) catchUp(ctx context.Context, b *batch, sb pipeline.SpoolBatch, stop int) error {
	for stop < 0 || b.st.Next < stop {
		data, ok, err := s.readParts(sb, b.st.Next)
		if err != nil || !ok {
			return err
		}
		if err := s.write(ctx, b, sb, data); err != nil {
			return err
		}
	}
	return nil
}

// readParts reads chunk's two parts; ok is false while either is missing.
// The worker stores the output part first, so a chunk whose error part is
// there has both.
func (s *Spool) readParts(sb pipeline.SpoolBatch, chunk int) (data [2][]byte, ok bool, err error) {
	for _, i := range []int{1, 0} {
		p, err := s.Blobs.Path(sb.Files[i].Part(chunk))
		if err != nil {
			return data, false, err
		}
		data[i], err = os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return data, false, nil
		}
		if err != nil {
			return data, false, fmt.Errorf("spool: %w", err)
		}
	}
	return data, true, nil
}

// write appends one chunk's bytes at the recorded ends and records the
// advance. On any failure the in-memory state is dropped, as a crash
// would drop it, and reloaded (the files cut back) on next use.
func (s *Spool) write(ctx context.Context, b *batch, sb pipeline.SpoolBatch, data [2][]byte) (err error) {
	defer func() {
		if err != nil {
			b.unload()
		}
	}()
	next := b.st
	for i := range data {
		if len(data[i]) == 0 {
			continue
		}
		if err := s.file(b, sb, i); err != nil {
			return err
		}
		if _, err := b.f[i].WriteAt(data[i], next.Len[i]); err != nil {
			return fmt.Errorf("spool: batch %s: %w", sb.ID, err)
		}
		b.h[i].Write(data[i])
		next.Len[i] += int64(len(data[i]))
	}
	if err := fault(sb, pipeline.PointSpoolAfterWrite); err != nil {
		return err
	}
	next.Next++
	if err := s.record(ctx, sb.ID, b, next, next.Next-1, b.st.Hash); err != nil {
		return err
	}
	b.advanced()
	return nil
}

// file opens the batch's spool file i for this call, unless it is open.
func (s *Spool) file(b *batch, sb pipeline.SpoolBatch, i int) error {
	if b.f[i] != nil {
		return nil
	}
	p, err := s.Blobs.Path(sb.Files[i].Spool)
	if err != nil {
		return err
	}
	if b.f[i], err = os.OpenFile(p, os.O_RDWR, 0); err != nil {
		return fmt.Errorf("spool: batch %s: its spool file is gone: %w", sb.ID, err)
	}
	return nil
}

// record saves next (with the running hashes) as the batch's state and,
// for chunk ≥ 0, that chunk's record: the hash states before it (before)
// and after it (next's).
func (s *Spool) record(ctx context.Context, id string, b *batch, next state, chunk int, before [2][]byte) error {
	for i, h := range b.h {
		m, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		next.Hash[i] = m
	}
	js, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var rec []byte
	if chunk >= 0 {
		rec = chunkRecord{Before: before, After: next.Hash}.append(nil)
	}
	if err := s.States.SaveSpool(ctx, id, js, chunk, rec); err != nil {
		return err
	}
	b.st = next
	return nil
}

func fault(sb pipeline.SpoolBatch, point string) error {
	if sb.Fault == nil {
		return nil
	}
	return sb.Fault(point)
}

// advanced wakes the chunks waiting for the spool to move.
func (b *batch) advanced() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// unload forgets the in-memory state; the next use reloads the recorded one.
func (b *batch) unload() {
	b.close()
	b.loaded = false
}

// close closes the batch's files: a batch keeps none open between calls,
// so a stalled one holds no descriptor.
func (b *batch) close() {
	for i, f := range b.f {
		if f != nil {
			f.Close()
			b.f[i] = nil
		}
	}
}

// release ends a call on b (its mu held): the files are closed, and a
// batch that is final or ended leaves the map, so that a long-running
// engine keeps nothing per batch it merged or failed; a later call
// reloads the record, or finds there is none.
func (s *Spool) release(id string, b *batch) {
	b.close()
	if b.ended || b.st.Final {
		s.forget(id, b)
	}
}

// open loads the batch's recorded state, or starts its files with their
// headers when it has none, and cuts the files back to the recorded
// lengths: bytes past them are from a write whose record a crash lost.
func (s *Spool) open(ctx context.Context, b *batch, sb pipeline.SpoolBatch) (err error) {
	if b.loaded || b.ended {
		return nil
	}
	defer func() {
		if err != nil {
			b.unload()
		}
	}()
	js, ok, err := s.States.LoadSpool(ctx, sb.ID)
	if err != nil {
		return err
	}
	if !ok {
		return s.start(ctx, b, sb)
	}
	var st state
	if err := json.Unmarshal(js, &st); err != nil {
		return fmt.Errorf("spool: batch %s: its recorded state: %w", sb.ID, err)
	}
	b.st, b.loaded = st, true
	if st.Final {
		return nil
	}
	for i := range sb.Files {
		if err := s.cutBack(b, sb, i, st.Len[i]); err != nil {
			return err
		}
		b.h[i] = sha256.New()
		if err := b.h[i].(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash[i]); err != nil {
			return fmt.Errorf("spool: batch %s: its recorded hash: %w", sb.ID, err)
		}
	}
	return nil
}

// cutBack cuts spool file i back to n bytes, the recorded length: bytes
// past it are from a write whose record a crash lost. A file shorter than
// that lost recorded bytes (a power loss, a disk fault): Truncate would
// pad it with zeros under a digest that is not its own, so the batch fails.
func (s *Spool) cutBack(b *batch, sb pipeline.SpoolBatch, i int, n int64) error {
	if err := s.file(b, sb, i); err != nil {
		return err
	}
	fi, err := b.f[i].Stat()
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if fi.Size() < n {
		return &pipeline.SpoolError{Reason: fmt.Sprintf("the spool file %s holds %d bytes, fewer than the %d recorded: written bytes were lost (a power loss or a disk fault); upload the file again", sb.Files[i].Spool, fi.Size(), n)}
	}
	if err := b.f[i].Truncate(n); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// start creates the batch's two files, each holding its header, and
// records chunk 0 as the next. A crash before the record starts over. A
// batch merged or failed (its state deleted) gets no spool again: it is
// ended, and its late chunk stores parts that retention removes.
func (s *Spool) start(ctx context.Context, b *batch, sb pipeline.SpoolBatch) error {
	if sb.Live != nil {
		live, err := sb.Live(ctx)
		if err != nil {
			return err
		}
		if !live {
			b.ended = true
			return nil
		}
	}
	var st state
	for i, f := range sb.Files {
		p, err := s.Blobs.Path(f.Spool)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if b.f[i], err = os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fsblob.FileMode); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if _, err := b.f[i].WriteAt(f.Header, 0); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		b.h[i] = sha256.New()
		b.h[i].Write(f.Header)
		st.Len[i] = int64(len(f.Header))
	}
	if err := fault(sb, pipeline.PointSpoolAfterStart); err != nil {
		return err
	}
	if err := s.record(ctx, sb.ID, b, st, -1, [2][]byte{}); err != nil {
		return err
	}
	b.loaded = true
	return nil
}

// Finalise implements pipeline.Spool: the remaining parts copied in, the
// digests recorded, then both files renamed to their keys. A crash between
// the record and the renames is finished by the next call.
func (s *Spool) Finalise(ctx context.Context, sb pipeline.SpoolBatch, total int) ([2]pipeline.FileDigest, error) {
	b := s.batch(sb.ID)
	b.mu.Lock()
	defer b.mu.Unlock()
	defer s.release(sb.ID, b) // a late duplicate reloads the final state from the record
	var d [2]pipeline.FileDigest
	if err := s.open(ctx, b, sb); err != nil {
		return d, err
	}
	if b.ended {
		return d, fmt.Errorf("spool: batch %s was dropped (failed or merged)", sb.ID)
	}
	if !b.st.Final {
		if err := s.seal(ctx, b, sb, total); err != nil {
			return d, err
		}
	}
	for i, f := range sb.Files {
		d[i] = pipeline.FileDigest{Key: f.Key, Bytes: b.st.Len[i], SHA256: b.st.Sum[i]}
		if err := s.adopt(sb, i, b.st); err != nil {
			return d, err
		}
		if i == 0 {
			if err := fault(sb, pipeline.PointSpoolAfterRename); err != nil {
				return d, err
			}
		}
	}
	return d, nil
}

// forget lets a finalised batch's memory go, so a long-running engine
// does not keep one entry per batch it ever merged.
func (s *Spool) forget(id string, b *batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.batches[id] == b {
		delete(s.batches, id)
	}
}

// seal brings the spool to total chunks and records its digests.
func (s *Spool) seal(ctx context.Context, b *batch, sb pipeline.SpoolBatch, total int) error {
	if err := s.catchUp(ctx, b, sb, total); err != nil {
		return err
	}
	if b.st.Next != total {
		// The merge runs once every chunk is counted, and a counted
		// chunk is in the spool or in its parts: a part is missing.
		return fmt.Errorf("spool: batch %s: chunk %d of %d is neither in the spool nor in its parts (%s)",
			sb.ID, b.st.Next, total, sb.Files[1].Part(b.st.Next))
	}
	next := b.st
	next.Final = true
	for i, h := range b.h {
		next.Sum[i] = hex.EncodeToString(h.Sum(nil))
	}
	if err := s.record(ctx, sb.ID, b, next, -1, [2][]byte{}); err != nil {
		b.unload()
		return err
	}
	b.unload() // closes the files; the state stays loaded below
	b.loaded = true
	b.advanced() // a late duplicate waiting for a chunk finds the batch final
	return fault(sb, pipeline.PointSpoolAfterFinal)
}

// adopt moves file i to its key unless an earlier call did.
func (s *Spool) adopt(sb pipeline.SpoolBatch, i int, st state) error {
	f := sb.Files[i]
	p, err := s.Blobs.Path(f.Spool)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		if _, err := s.Blobs.Stat(context.Background(), f.Key); err != nil {
			return fmt.Errorf("spool: batch %s: neither the spool file nor %s is there: %w", sb.ID, f.Key, err)
		}
		return nil // moved by an earlier call
	}
	sum, err := hex.DecodeString(st.Sum[i])
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return s.Blobs.Adopt(p, f.Key, sum, st.Len[i])
}

// Drop implements pipeline.Spool: the batch's spool files (those not
// moved to their keys) and state go, and its waiting chunks stop waiting
// (they store parts, which nothing merges). Its entry leaves the map: a
// later call finds no state and a batch that is not live, so none comes
// back. A batch with neither a state nor a spool directory costs a read.
func (s *Spool) Drop(ctx context.Context, id string) error {
	b := s.batch(id)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unload()
	b.st, b.h = state{}, [2]hash.Hash{}
	if !b.ended {
		b.ended = true
		b.advanced()
	}
	s.forget(id, b)
	dir, err := s.Blobs.Path(pipeline.SpoolPrefix(id) + "x")
	if err != nil {
		return err
	}
	dir = filepath.Dir(dir)
	_, statErr := os.Stat(dir)
	_, has, err := s.States.LoadSpool(ctx, id)
	if err != nil {
		return err
	}
	if errors.Is(statErr, fs.ErrNotExist) && !has {
		return nil
	}
	// The files first: a crash before the row goes leaves a state whose
	// files are gone, for a batch that is over; Drop again (gc, the
	// notifier) removes it, and a batch over never opens its spool.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if s.DropFault != nil {
		if err := s.DropFault(id); err != nil {
			return err
		}
	}
	return s.States.DeleteSpool(ctx, id)
}

// Has implements pipeline.Spool.
func (s *Spool) Has(ctx context.Context, id string) (bool, error) {
	_, ok, err := s.States.LoadSpool(ctx, id)
	return ok, err
}

// Close closes every batch's files and forgets every entry; the recorded
// states stay, for the next process. Chunks waiting in Append stop
// waiting and store parts.
func (s *Spool) Close() error {
	s.mu.Lock()
	bs := s.batches
	s.batches = map[string]*batch{}
	s.mu.Unlock()
	for _, b := range bs {
		b.mu.Lock()
		b.unload()
		if !b.ended {
			b.ended = true
			b.advanced()
		}
		b.mu.Unlock()
	}
	return nil
}

// Entries is how many batches the spool keeps in memory (tests of a
// long-running engine).
func (s *Spool) Entries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches)
}
