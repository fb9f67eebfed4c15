package refstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"unsafe"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// table is one version's hash file, memory-mapped. It is immutable: the
// only change is Close, when the version is deleted or the store closed.
type table struct {
	path string

	mu    sync.RWMutex
	m     *mapping
	cols  []string
	slots []uint64
	tags  []uint32
	data  []byte
}

var _ sluice.Reference = (*table)(nil)

func openTable(path string) (*table, error) {
	s := &table{path: path}
	if err := s.reopen(); err != nil {
		return nil, err
	}
	return s, nil
}

// Close unmaps the file; later lookups fail.
func (s *table) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unmap()
}

func (s *table) unmap() error {
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

func (s *table) reopen() error {
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
func (s *table) Columns(ctx context.Context) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.m == nil {
		return nil, errClosed
	}
	return append([]string(nil), s.cols...), nil
}

// Lookup implements sluice.Reference. All values of one call share one
// string and one slice backing, so a chunk's lookup costs a few
// allocations, not several per row.
func (s *table) Lookup(ctx context.Context, keys []string) ([][]string, error) {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	if err := s.LookupPacked(ctx, keys, &sc.packed); err != nil {
		return nil, err
	}
	return s.decode(sc.packed.Buf, sc.packed.Spans), nil
}

var _ sluice.PackedReference = (*table)(nil)

// LookupPacked implements sluice.PackedReference: a record's value is
// stored in the packed form (uvarint length + bytes per column), so it is
// copied out as it is.
func (s *table) LookupPacked(ctx context.Context, keys []string, into *sluice.PackedValues) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.m == nil {
		return errClosed
	}
	// Each found value is copied out of the mapping as it is found: going
	// back to the records later would take every cache and TLB miss again
	// at 10M keys, where a chunk's records lie on as many pages as it has
	// keys.
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	spans := slices.Grow(into.Spans[:0], len(keys))[:len(keys)]
	clear(spans)
	buf := into.Buf[:0]
	ps := s.probeOrder(sc, keys)
	var sink uint64
	var offs, next [probeGroup]uint64
	g := ps[:min(len(ps), probeGroup)]
	ps = ps[len(g):]
	sink += s.touchSlots(g, &offs)
	for len(g) > 0 {
		// The next group's slots are loaded while this group's records
		// are: two groups' misses in flight, not one.
		ng := ps[:min(len(ps), probeGroup)]
		ps = ps[len(ng):]
		sink += s.touchSlots(ng, &next)
		sink += s.touchRecords(offs[:len(g)])
		for _, p := range g {
			if v := s.find(keys[p.i], p.h); v != nil {
				spans[p.i] = sluice.PackedSpan{Start: len(buf), End: len(buf) + len(v), Found: true}
				buf = append(buf, v...)
			}
		}
		g, offs = ng, next
	}
	keep(sink)
	into.Buf, into.Spans = buf, spans
	return nil
}

// scratch is a lookup's working memory, reused from call to call.
type scratch struct {
	packed sluice.PackedValues // Lookup's, decoded into strings at the end
	counts []int32             // probeOrder's
	hashes []uint64
	probes []probe
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// decode splits the packed values into strings that share one allocation.
func (s *table) decode(buf []byte, spans []sluice.PackedSpan) [][]string {
	out := make([][]string, len(spans))
	all := string(buf)
	backing := make([]string, 0, len(spans)*(len(s.cols)-1))
	for i, sp := range spans {
		if !sp.Found {
			continue
		}
		start := len(backing)
		for j := sp.Start; j < sp.End; {
			n, w := binary.Uvarint(buf[j:sp.End])
			j += w
			backing = append(backing, all[j:j+int(n)])
			j += int(n)
		}
		out[i] = backing[start:len(backing):len(backing)]
	}
	return out
}

// probeGroup is how many probes touch their memory before any is compared.
const probeGroup = 16

// touchSlots and touchRecords load the home slot and tag, then the first
// record byte, of each probe of a group. The loads of one pass do not
// depend on each other, so the CPU has a whole group's cache (and TLB)
// misses in flight at once; find then hits the cache. Probed one by one,
// each key waited for its slot, then its record: at 10M keys that was most
// of a chunk's lookup time (BENCHMARKS.md). LookupPacked loads the next
// group's slots with this group's records. They return a sum only so the
// loads are not optimised away.
func (s *table) touchSlots(g []probe, offs *[probeGroup]uint64) uint64 {
	mask := uint64(len(s.slots) - 1)
	var sink uint64
	for j, p := range g {
		i := p.h & mask
		offs[j] = s.slots[i]
		sink += uint64(s.tags[i])
	}
	return sink
}

func (s *table) touchRecords(offs []uint64) uint64 {
	var sink uint64
	for _, off := range offs {
		if off != 0 && off <= uint64(len(s.data)) {
			sink += uint64(s.data[off-1])
		}
	}
	return sink
}

//go:noinline
func keep(uint64) {}

// probe is one key to look up: its index in the call and its hash.
type probe struct {
	h uint64
	i int
}

// probeOrder returns the keys' probes ordered by home slot. Probing in
// slot order walks the slot, tag and record areas of the file forwards
// (build writes records in slot order), so a chunk touches the pages of a
// table far larger than the cache in order instead of a random page per
// key (BENCHMARKS.md, "Reference lookups at 10M keys"). The order is a
// one-pass counting sort on the slot's top bits, about one bucket per key:
// exact order within a bucket buys nothing, as its slots share pages.
func (s *table) probeOrder(sc *scratch, keys []string) []probe {
	mask := uint64(len(s.slots) - 1)
	shift := bits.Len64(mask)
	for nb := 1; nb < len(keys) && shift > 0; nb <<= 1 {
		shift--
	}
	counts := slices.Grow(sc.counts[:0], int(mask>>shift)+2)[:(mask>>shift)+2]
	clear(counts)
	hs := slices.Grow(sc.hashes[:0], len(keys))[:len(keys)]
	for i, k := range keys {
		hs[i] = hash(unsafe.Slice(unsafe.StringData(k), len(k)))
		counts[(hs[i]&mask)>>shift+1]++
	}
	for b := 1; b < len(counts); b++ {
		counts[b] += counts[b-1]
	}
	ps := slices.Grow(sc.probes[:0], len(keys))[:len(keys)]
	for i, h := range hs {
		b := (h & mask) >> shift
		ps[counts[b]] = probe{h, i}
		counts[b]++
	}
	sc.counts, sc.hashes, sc.probes = counts, hs, ps
	return ps
}

// find returns the packed value of key, whose hash is h, or nil.
func (s *table) find(key string, h uint64) []byte {
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

var errClosed = fmt.Errorf("refstore: the reference version was deleted: %w", sluice.ErrNotFound)
