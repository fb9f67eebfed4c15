// Package refstore is the embedded pipeline's reference catalog: a
// read-only hash table in one file, memory-mapped, so a lookup costs a hash
// and one or two memory reads instead of a database query. It is rebuilt
// whole by Load (written to a temporary file, then renamed into place), which
// matches how reference data arrives: a full file, loaded once, read by every
// batch after.
//
// File layout (little-endian):
//
//	magic "SLREF001" | u64 slots | u64 keys | u64 dataOffset | u32 ncols | cols (uvarint len + bytes)...
//	slots × u64: record offset + 1 (0 = empty), at an 8-byte aligned offset
//	slots × u32: the hash's high 32 bits, to skip most key compares
//	records: uvarint key length, key, uvarint value length, value
//	(value = the non-key columns, each as uvarint length + bytes)
//
// Beyond memory: the table is mapped, not read, so the kernel keeps in RAM
// the pages lookups touch and drops them under pressure; a reference larger
// than memory still works, at the price of page faults.
package refstore

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/sluicehq/sluice/pkg/sluice"
)

const magic = "SLREF001"

// ErrNoReference is returned by a store that was never loaded.
var ErrNoReference = errors.New("no reference data loaded (run `sluice reference load REF.csv` or pass --reference)")

// Store is a reference catalog in a file.
type Store struct {
	path string

	mu    sync.RWMutex
	m     *mapping
	cols  []string
	slots []uint64
	tags  []uint32
	data  []byte
}

var (
	_ sluice.Catalog       = (*Store)(nil)
	_ sluice.CatalogLoader = (*Store)(nil)
)

// Open opens the store at path; the file need not exist yet.
func Open(path string) (*Store, error) {
	s := &Store{path: path}
	if err := s.reopen(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return s, nil
}

// Close unmaps the file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unmap()
}

func (s *Store) unmap() error {
	if s.m == nil {
		return nil
	}
	err := s.m.close()
	s.m, s.cols, s.slots, s.tags, s.data = nil, nil, nil, nil, nil
	return err
}

// hash is FNV-1a widened by a final mix: stable across processes, which
// maphash is not, and fast enough for short keys.
func hash(k []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range k {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

func (s *Store) reopen() error {
	m, err := mapFile(s.path)
	if err != nil {
		return err
	}
	b := m.bytes
	bad := func(why string) error {
		m.close()
		return fmt.Errorf("refstore: %s is corrupt (%s); load the reference again", s.path, why)
	}
	if len(b) < 36 || string(b[:8]) != magic {
		return bad("bad header")
	}
	nslots := binary.LittleEndian.Uint64(b[8:])
	dataOff := binary.LittleEndian.Uint64(b[24:])
	ncols := binary.LittleEndian.Uint32(b[32:])
	p := b[36:]
	cols := make([]string, 0, ncols)
	for range ncols {
		n, k := binary.Uvarint(p)
		if k <= 0 || uint64(len(p)-k) < n {
			return bad("columns")
		}
		cols = append(cols, string(p[k:k+int(n)]))
		p = p[k+int(n):]
	}
	slotOff := align8(len(b) - len(p))
	tagOff := slotOff + int(nslots)*8
	if uint64(tagOff+int(nslots)*4) > dataOff || dataOff > uint64(len(b)) || nslots&(nslots-1) != 0 {
		return bad("sizes")
	}
	slots := unsafe.Slice((*uint64)(unsafe.Pointer(&b[slotOff])), nslots)
	tags := unsafe.Slice((*uint32)(unsafe.Pointer(&b[tagOff])), nslots)
	s.mu.Lock()
	s.unmap()
	s.m, s.cols, s.slots, s.tags, s.data = m, cols, slots, tags, b[dataOff:]
	s.mu.Unlock()
	return nil
}

func align8(n int) int { return (n + 7) &^ 7 }

// Columns implements sluice.Catalog.
func (s *Store) Columns(ctx context.Context) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.m == nil {
		return nil, ErrNoReference
	}
	return append([]string(nil), s.cols...), nil
}

// Lookup implements sluice.Catalog. All values of one call share one
// string and one slice backing, so a chunk's lookup costs a few
// allocations, not several per row.
func (s *Store) Lookup(ctx context.Context, keys []string) ([][]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.m == nil {
		return nil, ErrNoReference
	}
	out := make([][]string, len(keys))
	nv := len(s.cols) - 1
	found := make([][]byte, len(keys))
	size := 0
	for i, k := range keys {
		if v := s.find(k); v != nil {
			found[i] = v
			size += len(v)
		}
	}
	buf := make([]byte, 0, size)
	for _, v := range found {
		buf = append(buf, v...)
	}
	all := string(buf)
	backing := make([]string, 0, len(keys)*nv)
	pos := 0
	for i, v := range found {
		if v == nil {
			continue
		}
		start := len(backing)
		for j := 0; j < len(v); {
			n, w := binary.Uvarint(v[j:])
			j += w
			backing = append(backing, all[pos+j:pos+j+int(n)])
			j += int(n)
		}
		pos += len(v)
		out[i] = backing[start:len(backing):len(backing)]
	}
	return out, nil
}

// find returns the packed value of key, or nil.
func (s *Store) find(key string) []byte {
	kb := unsafe.Slice(unsafe.StringData(key), len(key))
	h := hash(kb)
	mask := uint64(len(s.slots) - 1)
	tag := uint32(h >> 32)
	for i := h & mask; ; i = (i + 1) & mask {
		off := s.slots[i]
		if off == 0 {
			return nil
		}
		if s.tags[i] != tag {
			continue
		}
		rec := s.data[off-1:]
		n, w := binary.Uvarint(rec)
		if int(n) == len(key) && string(rec[w:w+int(n)]) == key {
			rec = rec[w+int(n):]
			vn, vw := binary.Uvarint(rec)
			v := rec[vw : vw+int(vn)]
			if v == nil {
				v = []byte{}
			}
			return v[:len(v):len(v)]
		}
	}
}

// Load implements sluice.CatalogLoader: it builds a new file and swaps it
// in atomically. A key that appears twice with the same values is kept
// once; with different values the load fails.
func (s *Store) Load(ctx context.Context, columns []string, next func() ([]string, error)) (int, error) {
	if len(columns) < 1 {
		return 0, errors.New("refstore: the reference has no columns")
	}
	// Records first, into a temporary data file; the table is built in
	// memory from (hash, offset) pairs, 12 bytes a key.
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	dataTmp, err := os.CreateTemp(dir, ".refdata-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(dataTmp.Name())
	defer dataTmp.Close()
	w := bufio.NewWriterSize(dataTmp, 1<<20)
	type entry struct {
		h   uint64
		off uint64
	}
	var entries []entry
	seen := map[string]int{} // key → index in entries, for duplicate checks
	var off uint64
	var rec, val []byte
	for {
		row, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		if len(row) != len(columns) {
			return 0, fmt.Errorf("reference row %d has %d fields, the header has %d", len(entries)+1, len(row), len(columns))
		}
		val = val[:0]
		for _, v := range row[1:] {
			val = binary.AppendUvarint(val, uint64(len(v)))
			val = append(val, v...)
		}
		if i, dup := seen[row[0]]; dup {
			if old := s.valueAt(dataTmp, w, entries[i].off); string(old) != string(val) {
				return 0, fmt.Errorf("reference key %q appears twice with different values", row[0])
			}
			continue
		}
		rec = binary.AppendUvarint(rec[:0], uint64(len(row[0])))
		rec = append(rec, row[0]...)
		rec = binary.AppendUvarint(rec, uint64(len(val)))
		rec = append(rec, val...)
		if _, err := w.Write(rec); err != nil {
			return 0, err
		}
		seen[row[0]] = len(entries)
		entries = append(entries, entry{hash([]byte(row[0])), off})
		off += uint64(len(rec))
		if len(entries)%65536 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
	}
	seen = nil
	if err := w.Flush(); err != nil {
		return 0, err
	}

	nslots := uint64(16)
	for nslots < uint64(len(entries))*2 {
		nslots *= 2
	}
	slots := make([]uint64, nslots)
	tags := make([]uint32, nslots)
	for _, e := range entries {
		for i := e.h & (nslots - 1); ; i = (i + 1) & (nslots - 1) {
			if slots[i] == 0 {
				slots[i], tags[i] = e.off+1, uint32(e.h>>32)
				break
			}
		}
	}

	out, err := os.CreateTemp(dir, ".refstore-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	if err := out.Chmod(0o644); err != nil { // not CreateTemp's 0600, as every data file
		return 0, err
	}
	ow := bufio.NewWriterSize(out, 1<<20)
	var hdr []byte
	hdr = append(hdr, magic...)
	hdr = binary.LittleEndian.AppendUint64(hdr, nslots)
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(entries)))
	dataOffPos := len(hdr)
	hdr = binary.LittleEndian.AppendUint64(hdr, 0) // patched below
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(columns)))
	for _, c := range columns {
		hdr = binary.AppendUvarint(hdr, uint64(len(c)))
		hdr = append(hdr, c...)
	}
	for len(hdr)%8 != 0 {
		hdr = append(hdr, 0)
	}
	dataOff := uint64(len(hdr)) + nslots*12
	binary.LittleEndian.PutUint64(hdr[dataOffPos:], dataOff)
	ow.Write(hdr)
	var b8 [8]byte
	for _, v := range slots {
		binary.LittleEndian.PutUint64(b8[:], v)
		ow.Write(b8[:])
	}
	for _, v := range tags {
		binary.LittleEndian.PutUint32(b8[:4], v)
		ow.Write(b8[:4])
	}
	if _, err := dataTmp.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if _, err := io.Copy(ow, dataTmp); err != nil {
		return 0, err
	}
	if err := ow.Flush(); err != nil {
		return 0, err
	}
	if err := out.Sync(); err != nil {
		return 0, err
	}
	if err := out.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(out.Name(), s.path); err != nil {
		return 0, err
	}
	return len(entries), s.reopen()
}

// valueAt reads back a record's value from the data file being written
// (only for the rare duplicate key).
func (s *Store) valueAt(f *os.File, w *bufio.Writer, off uint64) []byte {
	w.Flush()
	buf := make([]byte, 64<<10)
	n, _ := f.ReadAt(buf, int64(off))
	buf = buf[:n]
	kn, k := binary.Uvarint(buf)
	buf = buf[k+int(kn):]
	vn, k := binary.Uvarint(buf)
	return buf[k : k+int(vn)]
}
