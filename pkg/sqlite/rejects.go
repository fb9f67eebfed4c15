package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/klauspost/compress/s2"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// A batch's rejected rows are stored in blocks: one row of reject_blocks
// holds up to blockRows rejected rows of one batch, in line order, packed
// into a blob, under the lines it covers. A worker stores a chunk's rows
// with one INSERT instead of one row per rejected row: with modernc's
// per-row binding, VDBE and B-tree costs, a row each took 3.7 µs (1.1 s of
// a 10M-row run, BENCHMARKS.md), a block costs about that per chunk.
//
// The blocks of a batch cover disjoint line ranges. A call whose lines
// fall in the range of blocks already stored (a redelivered chunk, or the
// conformance suite's overlapping calls) reads those blocks, merges its
// rows into theirs (its row wins on a line both hold, as the upsert of the
// row layout did) and writes the result in their place, in one
// transaction: storing a (batch, line) twice keeps one.
//
// The rejects table of the row layout stays: a database written before the
// blocks still has its rows there, and Rejects reads both.
const blockSchema = `
CREATE TABLE IF NOT EXISTS reject_blocks (
	batch_id   TEXT    NOT NULL,
	first_line INTEGER NOT NULL,
	last_line  INTEGER NOT NULL,
	rows       BLOB    NOT NULL,
	PRIMARY KEY (batch_id, first_line)
);
`

// blockRows bounds one block: a page of Rejects decodes at most a block
// more than it returns (about 150 KB at the bench data's 150 bytes a row).
const blockRows = 1000

// The statements, prepared once per database (DB.prepared).
const (
	// The blocks that may hold lines ?2 to ?3: the one starting at or
	// before ?2 (it may reach past it), and those starting from there to
	// ?3. Two index seeks however many blocks the batch has.
	overlapSQL = `SELECT first_line, rows FROM reject_blocks
		WHERE batch_id = ?1 AND first_line <= ?3 AND last_line >= ?2
		  AND first_line >= COALESCE((SELECT first_line FROM reject_blocks
		      WHERE batch_id = ?1 AND first_line <= ?2 ORDER BY first_line DESC LIMIT 1), ?2)`
	deleteBlockSQL = `DELETE FROM reject_blocks WHERE batch_id = ? AND first_line = ?`
	insertBlockSQL = `INSERT INTO reject_blocks (batch_id, first_line, last_line, rows) VALUES (?, ?, ?, ?)`
	// The blocks from the one holding line ?2 on, in line order.
	pageBlocksSQL = `SELECT rows FROM reject_blocks
		WHERE batch_id = ?1 AND first_line >= COALESCE((SELECT first_line FROM reject_blocks
		      WHERE batch_id = ?1 AND first_line <= ?2 ORDER BY first_line DESC LIMIT 1), ?2)
		ORDER BY first_line`
	pageRowsSQL = `SELECT line, chunk, col, rule, message, raw FROM rejects WHERE batch_id = ? AND line > ? ORDER BY line LIMIT ?`
)

// AddRejects implements sluice.Ledger.
func (l *Ledger) AddRejects(ctx context.Context, id string, rows []sluice.RowError) error {
	if len(rows) == 0 {
		return nil
	}
	rows = inLineOrder(rows)
	st, err := l.prepared(ctx, overlapSQL, deleteBlockSQL, insertBlockSQL)
	if err != nil {
		return fmt.Errorf("add rejects: %w", err)
	}
	err = l.db.tx(ctx, func(tx *sql.Tx) error {
		old, err := takeOverlapping(ctx, tx.StmtContext(ctx, st[0]), tx.StmtContext(ctx, st[1]), id, rows[0].Line, rows[len(rows)-1].Line)
		if err != nil {
			return err
		}
		if len(old) > 0 {
			rows = mergeRejects(old, rows)
		}
		ins := tx.StmtContext(ctx, st[2])
		var buf, packed []byte
		for b := range slices.Chunk(rows, blockRows) {
			buf = encodeBlock(buf[:0], b)
			packed = packBlock(packed, buf)
			if _, err := ins.ExecContext(ctx, id, b[0].Line, b[len(b)-1].Line, packed); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ledger: add rejects: %w", err)
	}
	return nil
}

// inLineOrder returns rows sorted by line with one row per line, the
// last given winning, as the row layout's upsert kept it. The worker's
// rows are sorted and distinct already: then they are returned as they
// are, without a copy.
func inLineOrder(rows []sluice.RowError) []sluice.RowError {
	ordered := true
	for i := 1; i < len(rows) && ordered; i++ {
		ordered = rows[i-1].Line < rows[i].Line
	}
	if ordered {
		return rows
	}
	out := slices.Clone(rows)
	slices.SortStableFunc(out, func(a, b sluice.RowError) int { return cmpLine(a.Line, b.Line) })
	// Keep the last of each run of equal lines: stable sort kept the
	// order they were given in.
	n := 0
	for i := range out {
		if i+1 < len(out) && out[i+1].Line == out[i].Line {
			continue
		}
		out[n] = out[i]
		n++
	}
	return out[:n]
}

func cmpLine(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// takeOverlapping deletes the batch's blocks that may hold lines from
// first to last and returns their rows, in line order.
func takeOverlapping(ctx context.Context, find, del *sql.Stmt, id string, first, last int64) ([]sluice.RowError, error) {
	rs, err := find.QueryContext(ctx, id, first, last)
	if err != nil {
		return nil, err
	}
	var out []sluice.RowError
	var starts []int64
	for rs.Next() {
		var start int64
		var blob []byte
		if err := rs.Scan(&start, &blob); err != nil {
			rs.Close()
			return nil, err
		}
		if out, err = decodeBlock(out, blob); err != nil {
			rs.Close()
			return nil, fmt.Errorf("batch %q, block at line %d: %w", id, start, err)
		}
		starts = append(starts, start)
	}
	if err := rs.Close(); err != nil {
		return nil, err
	}
	if err := rs.Err(); err != nil {
		return nil, err
	}
	for _, s := range starts {
		if _, err := del.ExecContext(ctx, id, s); err != nil {
			return nil, err
		}
	}
	// Disjoint blocks come back in no promised order; sort them by line.
	slices.SortStableFunc(out, func(a, b sluice.RowError) int { return cmpLine(a.Line, b.Line) })
	return out, nil
}

// mergeRejects merges two line-ordered lists; on a line both hold, the
// row of add wins.
func mergeRejects(old, add []sluice.RowError) []sluice.RowError {
	out := make([]sluice.RowError, 0, len(old)+len(add))
	i, j := 0, 0
	for i < len(old) || j < len(add) {
		switch {
		case j == len(add) || i < len(old) && old[i].Line < add[j].Line:
			out = append(out, old[i])
			i++
		case i < len(old) && old[i].Line == add[j].Line:
			i++ // replaced by add[j], taken next
		default:
			out = append(out, add[j])
			j++
		}
	}
	return out
}

// Rejects implements sluice.Ledger: the page comes from the blocks and
// from the rows of a database written before them, merged by line.
func (l *Ledger) Rejects(ctx context.Context, id string, afterLine int64, limit int) ([]sluice.RowError, error) {
	if limit <= 0 {
		limit = 100
	}
	fromBlocks, err := l.blockPage(ctx, id, afterLine, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: rejects: %w", err)
	}
	fromRows, err := l.rowPage(ctx, id, afterLine, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: rejects: %w", err)
	}
	out := fromBlocks
	if len(fromRows) > 0 {
		// A block is newer than a row of the old layout for its line.
		out = mergeRejects(fromRows, fromBlocks)
	}
	if len(out) > limit {
		out = out[:limit]
	}
	for i := range out {
		out[i].BatchID = id
	}
	return out, nil
}

// blockPage reads up to limit rows after line after from the blocks.
func (l *Ledger) blockPage(ctx context.Context, id string, after int64, limit int) ([]sluice.RowError, error) {
	if !l.db.blocks {
		return nil, nil // a read-only open of a database from before the blocks
	}
	st, err := l.db.prepared(ctx, pageBlocksSQL)
	if err != nil {
		return nil, err
	}
	rs, err := st.QueryContext(ctx, id, after)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out, block []sluice.RowError
	for len(out) < limit && rs.Next() {
		var blob []byte
		if err := rs.Scan(&blob); err != nil {
			return nil, err
		}
		if block, err = decodeBlock(block[:0], blob); err != nil {
			return nil, fmt.Errorf("batch %q: %w", id, err)
		}
		for _, r := range block {
			if r.Line > after && len(out) < limit {
				out = append(out, r)
			}
		}
	}
	return out, rs.Err()
}

// rowPage reads up to limit rows after line after from the row layout.
func (l *Ledger) rowPage(ctx context.Context, id string, after int64, limit int) ([]sluice.RowError, error) {
	st, err := l.db.prepared(ctx, pageRowsSQL)
	if err != nil {
		return nil, err
	}
	rs, err := st.QueryContext(ctx, id, after, limit)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []sluice.RowError
	for rs.Next() {
		var r sluice.RowError
		if err := rs.Scan(&r.Line, &r.Chunk, &r.Column, &r.Rule, &r.Message, &r.Raw); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rs.Err()
}

// blockFormat is the first byte of a block: its rows, compressed with S2
// (klauspost/compress, already a dependency) as one block. Rejected rows
// repeat their rule, column and message texts, and CSV compresses well:
// fewer pages to write to the WAL and to checkpoint. A reader meeting
// another first byte was given a block by a newer Sluice and says so
// rather than misreading it.
const blockFormat = 1

// encodeBlock appends rows to dst: per row its line (as the difference
// from the previous one), its chunk, and its four strings, each
// length-prefixed.
func encodeBlock(dst []byte, rows []sluice.RowError) []byte {
	size := 0
	for _, r := range rows {
		size += 2*binary.MaxVarintLen64 + 4*binary.MaxVarintLen32 + len(r.Column) + len(r.Rule) + len(r.Message) + len(r.Raw)
	}
	dst = slices.Grow(dst, size)
	prev := int64(0)
	for _, r := range rows {
		dst = binary.AppendVarint(dst, r.Line-prev)
		prev = r.Line
		dst = binary.AppendVarint(dst, int64(r.Chunk))
		for _, s := range [...]string{r.Column, r.Rule, r.Message, r.Raw} {
			dst = binary.AppendUvarint(dst, uint64(len(s)))
			dst = append(dst, s...)
		}
	}
	return dst
}

// packBlock returns the stored form of the encoded rows raw, reusing
// dst's memory.
func packBlock(dst, raw []byte) []byte {
	dst = slices.Grow(dst[:0], 1+s2.MaxEncodedLen(len(raw)))[:1+s2.MaxEncodedLen(len(raw))]
	dst[0] = blockFormat
	return dst[:1+len(s2.Encode(dst[1:], raw))]
}

var errBadBlock = errors.New("rejected rows block is damaged")

// decodeBlock appends the rows of a stored block to dst.
func decodeBlock(dst []sluice.RowError, stored []byte) ([]sluice.RowError, error) {
	if len(stored) == 0 || stored[0] != blockFormat {
		return dst, fmt.Errorf("%w (format %v, this Sluice reads %d)", errBadBlock, stored[:min(len(stored), 1)], blockFormat)
	}
	b, err := s2.Decode(nil, stored[1:])
	if err != nil {
		return dst, fmt.Errorf("%w: %w", errBadBlock, err)
	}
	prev := int64(0)
	for len(b) > 0 {
		var r sluice.RowError
		var ok bool
		var delta, chunk int64
		if delta, b, ok = varint(b); !ok {
			return dst, errBadBlock
		}
		if chunk, b, ok = varint(b); !ok {
			return dst, errBadBlock
		}
		r.Line, r.Chunk = prev+delta, int(chunk)
		prev = r.Line
		for _, s := range [...]*string{&r.Column, &r.Rule, &r.Message, &r.Raw} {
			n, k := binary.Uvarint(b)
			if k <= 0 || uint64(len(b)-k) < n {
				return dst, errBadBlock
			}
			*s = string(b[k : k+int(n)])
			b = b[k+int(n):]
		}
		dst = append(dst, r)
	}
	return dst, nil
}

func varint(b []byte) (int64, []byte, bool) {
	v, n := binary.Varint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}
