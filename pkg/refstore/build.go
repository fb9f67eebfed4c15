package refstore

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"io"
	"os"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// entry places one record: its key's hash and its offset in the data.
type entry struct {
	h   uint64
	off uint64
}

// build writes src's rows as a complete hash file at a temporary path in
// dir and returns that path and the number of keys. The caller renames it
// into place; nothing is visible before.
func build(ctx context.Context, dir string, columns []string, next func() ([]string, error)) (string, int, error) {
	data, err := os.CreateTemp(dir, ".refdata-*")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(data.Name())
	defer data.Close()
	entries, err := writeRecords(ctx, data, len(columns), next)
	if err != nil {
		return "", 0, err
	}
	slots, tags := placeEntries(entries)
	out, err := os.CreateTemp(dir, ".refstore-*")
	if err != nil {
		return "", 0, err
	}
	if err := out.Chmod(0o644); err != nil { // not CreateTemp's 0600, as every data file
		out.Close()
		os.Remove(out.Name())
		return "", 0, err
	}
	if err := writeIndex(out, columns, len(entries), slots, tags, data); err != nil {
		out.Close()
		os.Remove(out.Name())
		return "", 0, err
	}
	return out.Name(), len(entries), nil
}

// writeRecords appends every row to the data file as a record (records
// first: the table is built in memory from 12-byte entries, not rows). A
// key seen twice is kept once when its values are equal; with different
// values the load fails. The check keeps a hash of each key's values, not
// the values, so a record of any size costs the same.
func writeRecords(ctx context.Context, f *os.File, ncols int, next func() ([]string, error)) ([]entry, error) {
	w := bufio.NewWriterSize(f, 1<<20)
	var entries []entry
	seen := map[string]uint64{}
	var off uint64
	var rec, val []byte
	for {
		row, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(row) != ncols {
			return nil, sluice.Permanentf("reference row %d has %d fields, the header has %d", len(entries)+1, len(row), ncols)
		}
		val = val[:0]
		for _, v := range row[1:] {
			val = binary.AppendUvarint(val, uint64(len(v)))
			val = append(val, v...)
		}
		vh := valueHash(val)
		if old, dup := seen[row[0]]; dup {
			if old != vh {
				return nil, sluice.Permanentf("reference key %q appears twice with different values", row[0])
			}
			continue
		}
		rec = binary.AppendUvarint(rec[:0], uint64(len(row[0])))
		rec = append(rec, row[0]...)
		rec = binary.AppendUvarint(rec, uint64(len(val)))
		rec = append(rec, val...)
		if _, err := w.Write(rec); err != nil {
			return nil, err
		}
		seen[row[0]] = vh
		entries = append(entries, entry{hash([]byte(row[0])), off})
		off += uint64(len(rec))
		if len(entries)%65536 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	return entries, w.Flush()
}

func valueHash(v []byte) uint64 {
	h := fnv.New64a()
	h.Write(v)
	return h.Sum64()
}

// placeEntries lays the entries out in an open-addressing table at most
// half full, with each slot's hash tag beside it.
func placeEntries(entries []entry) ([]uint64, []uint32) {
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
	return slots, tags
}

// writeIndex writes header, slots, tags and the records to out, syncs and
// closes it. The records go in slot order, not input order, so the slots
// written hold their new offsets; the records file is mapped to read them.
func writeIndex(out *os.File, columns []string, keys int, slots []uint64, tags []uint32, data *os.File) error {
	ow := bufio.NewWriterSize(out, 1<<20)
	nslots := uint64(len(slots))
	var hdr []byte
	hdr = append(hdr, magic...)
	hdr = binary.LittleEndian.AppendUint64(hdr, nslots)
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(keys))
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
	m, err := mapFile(data.Name())
	if err != nil {
		return err
	}
	defer m.close()
	binary.LittleEndian.PutUint64(hdr[dataOffPos:], uint64(len(hdr))+nslots*12)
	ow.Write(hdr)
	var b8 [8]byte
	var off uint64 // where the slot's record lands in slot order, plus one
	for _, v := range slots {
		if v != 0 {
			binary.LittleEndian.PutUint64(b8[:], off+1)
			off += uint64(recordLen(m.bytes[v-1:]))
		} else {
			binary.LittleEndian.PutUint64(b8[:], 0)
		}
		ow.Write(b8[:])
	}
	for _, v := range tags {
		binary.LittleEndian.PutUint32(b8[:4], v)
		ow.Write(b8[:4])
	}
	if err := writeSlotOrder(ow, slots, m.bytes); err != nil {
		return err
	}
	if err := ow.Flush(); err != nil {
		return err
	}
	return errors.Join(out.Sync(), out.Close())
}

// recordLen is the length of the record at the start of b: key length,
// key, value length, value.
func recordLen(b []byte) int {
	kn, kw := binary.Uvarint(b)
	p := kw + int(kn)
	vn, vw := binary.Uvarint(b[p:])
	return p + vw + int(vn)
}

// writeSlotOrder writes the records in slot order. Records in slot order
// are what lets a lookup that probes in slot order read the file forwards
// (table.probeOrder); writeIndex wrote each slot's offset for this order.
func writeSlotOrder(w io.Writer, slots []uint64, data []byte) error {
	for _, v := range slots {
		if v == 0 {
			continue
		}
		if _, err := w.Write(data[v-1 : v-1+uint64(recordLen(data[v-1:]))]); err != nil {
			return err
		}
	}
	return nil
}
