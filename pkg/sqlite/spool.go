package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The spool's state (pkg/spool) lives in the ledger's database so that it
// shares the ledger's crash model: one row per batch, written after the
// spool's bytes and before the chunk's rejects and count, and, in the same
// transaction, one row per chunk with what the spool records of the bytes
// it put in (the running hashes' states around them), which a redelivered
// chunk is compared with. The tables are
// made with the rest of the schema in Open: made on first use, a failure
// (a cancelled first context) would have to be remembered or retried.
const spoolSchema = `
CREATE TABLE IF NOT EXISTS spool_state (
	batch_id TEXT PRIMARY KEY,
	data     BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS spool_chunks (
	batch_id TEXT    NOT NULL,
	chunk    INTEGER NOT NULL,
	sum      BLOB    NOT NULL,
	PRIMARY KEY (batch_id, chunk)
) WITHOUT ROWID;
`

// LoadSpool returns the spool state recorded for batch id; ok is false
// when there is none.
func (l *Ledger) LoadSpool(ctx context.Context, id string) (data []byte, ok bool, err error) {
	err = l.db.sql.QueryRowContext(ctx, `SELECT data FROM spool_state WHERE batch_id = ?`, id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: spool state of %s: %w", id, err)
	}
	return data, true, nil
}

const (
	saveSpoolStateSQL = `INSERT INTO spool_state (batch_id, data) VALUES (?, ?)
		ON CONFLICT (batch_id) DO UPDATE SET data = excluded.data`
	saveSpoolChunkSQL = `INSERT INTO spool_chunks (batch_id, chunk, sum) VALUES (?, ?, ?)
		ON CONFLICT (batch_id, chunk) DO UPDATE SET sum = excluded.sum`
)

// SaveSpool records batch id's spool state, replacing the one before, and,
// when chunk ≥ 0, chunk's record (sum), in one transaction.
func (l *Ledger) SaveSpool(ctx context.Context, id string, data []byte, chunk int, sum []byte) error {
	// Once per chunk: prepared once per database, as ChunkDone's are.
	st, err := l.prepared(ctx, saveSpoolStateSQL, saveSpoolChunkSQL)
	if err == nil {
		err = l.db.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.StmtContext(ctx, st[0]).ExecContext(ctx, id, data); err != nil {
				return err
			}
			if chunk < 0 {
				return nil
			}
			_, err := tx.StmtContext(ctx, st[1]).ExecContext(ctx, id, chunk, sum)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("sqlite: saving the spool state of %s: %w", id, err)
	}
	return nil
}

// SpoolChunk returns the record kept for chunk of batch id; ok is false
// when there is none.
func (l *Ledger) SpoolChunk(ctx context.Context, id string, chunk int) (sum []byte, ok bool, err error) {
	err = l.db.sql.QueryRowContext(ctx, `SELECT sum FROM spool_chunks WHERE batch_id = ? AND chunk = ?`, id, chunk).Scan(&sum)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: spool digest of chunk %d of %s: %w", chunk, id, err)
	}
	return sum, true, nil
}

// DeleteSpool forgets batch id's spool state and chunk records; none is no
// error.
func (l *Ledger) DeleteSpool(ctx context.Context, id string) error {
	err := l.db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM spool_state WHERE batch_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM spool_chunks WHERE batch_id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: deleting the spool state of %s: %w", id, err)
	}
	return nil
}

// SpoolRows counts the batches with a spool state, for tests of a
// long-running engine's leaks.
func (l *Ledger) SpoolRows(ctx context.Context) (int, error) {
	var n int
	err := l.db.sql.QueryRowContext(ctx, `SELECT count(*) FROM spool_state`).Scan(&n)
	return n, err
}
