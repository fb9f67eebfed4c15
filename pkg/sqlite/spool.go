package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// The spool's state (pkg/spool) lives in the ledger's database so that it
// shares the ledger's crash model: one row per batch, written after the
// spool's bytes and before the chunk's rejects and count. Its table is made
// on first use, so a database that never spools has none.
const spoolSchema = `
CREATE TABLE IF NOT EXISTS spool_state (
	batch_id TEXT PRIMARY KEY,
	data     BLOB NOT NULL
) WITHOUT ROWID;
`

var spoolOnce sync.Map // *DB → *spoolInit

type spoolInit struct {
	once sync.Once
	err  error
}

func (l *Ledger) spoolTable(ctx context.Context) error {
	v, _ := spoolOnce.LoadOrStore(l.db, &spoolInit{})
	in := v.(*spoolInit)
	in.once.Do(func() { _, in.err = l.db.sql.ExecContext(ctx, spoolSchema) })
	if in.err != nil {
		return fmt.Errorf("sqlite: creating the spool table: %w", in.err)
	}
	return nil
}

// LoadSpool returns the spool state recorded for batch id; ok is false
// when there is none.
func (l *Ledger) LoadSpool(ctx context.Context, id string) (data []byte, ok bool, err error) {
	if err := l.spoolTable(ctx); err != nil {
		return nil, false, err
	}
	err = l.db.sql.QueryRowContext(ctx, `SELECT data FROM spool_state WHERE batch_id = ?`, id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: spool state of %s: %w", id, err)
	}
	return data, true, nil
}

// SaveSpool records batch id's spool state, replacing the one before.
func (l *Ledger) SaveSpool(ctx context.Context, id string, data []byte) error {
	if err := l.spoolTable(ctx); err != nil {
		return err
	}
	// Prepared once (after the table exists): it runs once per chunk.
	st, err := l.db.prepared(ctx, `INSERT INTO spool_state (batch_id, data) VALUES (?, ?)
		ON CONFLICT (batch_id) DO UPDATE SET data = excluded.data`)
	if err == nil {
		_, err = st.ExecContext(ctx, id, data)
	}
	if err != nil {
		return fmt.Errorf("sqlite: saving the spool state of %s: %w", id, err)
	}
	return nil
}

// DeleteSpool forgets batch id's spool state; none is no error.
func (l *Ledger) DeleteSpool(ctx context.Context, id string) error {
	if err := l.spoolTable(ctx); err != nil {
		return err
	}
	if _, err := l.db.sql.ExecContext(ctx, `DELETE FROM spool_state WHERE batch_id = ?`, id); err != nil {
		return fmt.Errorf("sqlite: deleting the spool state of %s: %w", id, err)
	}
	return nil
}
