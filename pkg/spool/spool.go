// Package spool writes a batch's plain CSV output and error report in
// place, in chunk order, as the embedded engine's workers finish, so the
// merge moves no bytes: it finalises two files that are already whole
// (pipeline.Spool; docs/exactly-once.md, "The spool").
//
// Each batch has two files under pipeline.SpoolPrefix, started with their
// headers. A chunk's bytes go at the recorded end of each file (a pwrite at
// a known offset, so a rewrite after a crash puts the same bytes at the
// same place) and into the running SHA-256 of each; then the state (next
// chunk, both lengths, both hash states) is recorded in the ledger's
// database, before the worker records the chunk's rejects and count. After
// a restart the files are cut back to the recorded lengths. A chunk whose
// predecessors do not arrive within Wait is stored as parts, as without a
// spool, and copied in when the spool reaches it.
package spool

import (
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

// States keeps one record per batch (pkg/sqlite's Ledger).
type States interface {
	LoadSpool(ctx context.Context, id string) (data []byte, ok bool, err error)
	SaveSpool(ctx context.Context, id string, data []byte) error
	DeleteSpool(ctx context.Context, id string) error
}

// DefaultWait is how long a chunk waits for its predecessors before it
// falls back to parts: far above a chunk's processing time (milliseconds),
// far below the queue's visibility timeout.
const DefaultWait = 2 * time.Second

// Spool is the pipeline.Spool of one data directory. One process owns it
// (the embedded engine's directory lock): the in-memory state of a batch
// is the recorded one plus nothing unrecorded.
type Spool struct {
	Blobs  *fsblob.Store
	States States
	// Wait bounds how long Append waits for the chunks before its own;
	// zero means DefaultWait.
	Wait time.Duration

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
// files grow in chunk order anyway.
type batch struct {
	mu      sync.Mutex
	loaded  bool
	dropped bool
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
	if b.dropped {
		return true, false, nil
	}
	if err := s.open(ctx, b, sb); err != nil {
		return true, false, err
	}
	if !b.st.Final && b.st.Next < chunk {
		if err := s.catchUp(ctx, b, sb, chunk); err != nil {
			return true, false, err
		}
	}
	switch {
	case b.st.Final || b.st.Next > chunk:
		return true, true, nil // in already: nothing rewritten
	case b.st.Next < chunk:
		return false, false, nil
	}
	if err := s.write(ctx, b, sb, data); err != nil {
		return true, false, err
	}
	return true, true, nil
}

// Parted implements pipeline.Spool.
func (s *Spool) Parted(ctx context.Context, sb pipeline.SpoolBatch, chunk int) error {
	b := s.batch(sb.ID)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped {
		return nil
	}
	if err := s.open(ctx, b, sb); err != nil {
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
	if err := s.record(ctx, sb.ID, b, next); err != nil {
		return err
	}
	b.advanced()
	return nil
}

// record saves next (with the running hashes) as the batch's state.
func (s *Spool) record(ctx context.Context, id string, b *batch, next state) error {
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
	if err := s.States.SaveSpool(ctx, id, js); err != nil {
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
	for i, f := range b.f {
		if f != nil {
			f.Close()
			b.f[i] = nil
		}
	}
	b.loaded = false
}

// open loads the batch's recorded state, or starts its files with their
// headers when it has none, and cuts the files back to the recorded
// lengths: bytes past them are from a write whose record a crash lost.
func (s *Spool) open(ctx context.Context, b *batch, sb pipeline.SpoolBatch) (err error) {
	if b.loaded {
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
	for i, f := range sb.Files {
		p, err := s.Blobs.Path(f.Spool)
		if err != nil {
			return err
		}
		if b.f[i], err = os.OpenFile(p, os.O_RDWR, 0); err != nil {
			return fmt.Errorf("spool: batch %s: its spool file is gone: %w", sb.ID, err)
		}
		if err := b.f[i].Truncate(st.Len[i]); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		b.h[i] = sha256.New()
		if err := b.h[i].(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash[i]); err != nil {
			return fmt.Errorf("spool: batch %s: its recorded hash: %w", sb.ID, err)
		}
	}
	return nil
}

// start creates the batch's two files, each holding its header, and
// records chunk 0 as the next. A crash before the record starts over.
func (s *Spool) start(ctx context.Context, b *batch, sb pipeline.SpoolBatch) error {
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
	if err := s.record(ctx, sb.ID, b, st); err != nil {
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
	var d [2]pipeline.FileDigest
	if b.dropped {
		return d, fmt.Errorf("spool: batch %s was dropped (failed)", sb.ID)
	}
	if err := s.open(ctx, b, sb); err != nil {
		return d, err
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
	}
	s.forget(sb.ID, b) // a late duplicate reloads the final state from the record
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
	if err := s.record(ctx, sb.ID, b, next); err != nil {
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

// Drop implements pipeline.Spool: a failed batch's files and state go, and
// its waiting chunks stop waiting (they store parts, which nothing merges).
func (s *Spool) Drop(ctx context.Context, id string) error {
	b := s.batch(id)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unload()
	b.st, b.h = state{}, [2]hash.Hash{} // a tombstone: late chunks of the failed batch store parts
	if !b.dropped {
		b.dropped = true
		b.advanced()
	}
	dir, err := s.Blobs.Path(pipeline.SpoolPrefix(id) + "x")
	if err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return s.States.DeleteSpool(ctx, id)
}
