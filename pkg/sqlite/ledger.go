package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Ledger is a sluice.Ledger in the database. A batch is one row holding its
// JSON; every change is a read-modify-write inside one immediate
// transaction, so concurrent updates never lose each other.
type Ledger struct{ db *DB }

var _ sluice.Ledger = (*Ledger)(nil)

// Ledger returns the database's ledger.
func (db *DB) Ledger() *Ledger { return &Ledger{db: db} }

func batchNotFound(id string) error {
	return fmt.Errorf("batch %q: %w", id, sluice.ErrNotFound)
}

// The statements every batch change runs, prepared once per database
// (DB.prepared): compiling them again for every chunk was a third of
// ChunkDone's CPU time.
const (
	getBatchSQL  = `SELECT data FROM batches WHERE id = ?`
	putBatchSQL  = `UPDATE batches SET data = ?, state = ? WHERE id = ?`
	chunkDoneSQL = `INSERT INTO batch_chunks (batch_id, chunk) VALUES (?, ?) ON CONFLICT DO NOTHING`
	// The worker asks before each chunk whether it is counted already.
	chunkCountedSQL = `SELECT COUNT(*) FROM batch_chunks WHERE batch_id = ? AND chunk = ?`
)

// getBatch reads a batch with the prepared getBatchSQL (in a transaction:
// tx.StmtContext of it).
func getBatch(ctx context.Context, get *sql.Stmt, id string) (sluice.Batch, error) {
	var data string
	err := get.QueryRowContext(ctx, id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return sluice.Batch{}, batchNotFound(id)
	}
	if err != nil {
		return sluice.Batch{}, fmt.Errorf("ledger: %w", err)
	}
	var b sluice.Batch
	if err := json.Unmarshal([]byte(data), &b); err != nil {
		return sluice.Batch{}, fmt.Errorf("ledger: batch %q: %w", id, err)
	}
	return b, nil
}

// putBatch writes a batch with the prepared putBatchSQL.
func putBatch(ctx context.Context, put *sql.Stmt, b sluice.Batch) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	_, err = put.ExecContext(ctx, string(data), string(b.State), b.ID)
	return err
}

// prepared returns the statements of queries, prepared once per database.
func (l *Ledger) prepared(ctx context.Context, queries ...string) ([]*sql.Stmt, error) {
	out := make([]*sql.Stmt, len(queries))
	for i, q := range queries {
		var err error
		if out[i], err = l.db.prepared(ctx, q); err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
	}
	return out, nil
}

// CreateBatch implements sluice.Ledger.
func (l *Ledger) CreateBatch(ctx context.Context, b sluice.Batch) (sluice.Batch, bool, error) {
	if b.CreatedAt.IsZero() {
		b.CreatedAt = time.Now().UTC()
	}
	b.UpdatedAt = time.Now().UTC()
	if b.State == "" {
		b.State = sluice.StateSplitting
	}
	if b.TotalChunks == 0 {
		b.TotalChunks = -1
	}
	data, err := json.Marshal(b)
	if err != nil {
		return sluice.Batch{}, false, err
	}
	var out sluice.Batch
	created := false
	st, err := l.prepared(ctx, getBatchSQL)
	if err != nil {
		return sluice.Batch{}, false, err
	}
	err = l.db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO batches (id, key, state, created_at, data) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			b.ID, b.Key, string(b.State), b.CreatedAt.UnixNano(), string(data))
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		created = n == 1
		out, err = getBatch(ctx, tx.StmtContext(ctx, st[0]), b.ID)
		return err
	})
	if err != nil {
		return sluice.Batch{}, false, fmt.Errorf("ledger: create batch: %w", err)
	}
	return out, created, nil
}

// GetBatch implements sluice.Ledger.
func (l *Ledger) GetBatch(ctx context.Context, id string) (sluice.Batch, error) {
	st, err := l.prepared(ctx, getBatchSQL)
	if err != nil {
		return sluice.Batch{}, err
	}
	return getBatch(ctx, st[0], id)
}

// stateCounts keeps a count of batches per state that triggers update with
// every insert, state change and delete of a batch, whoever makes it, so
// CountByState reads a handful of rows however many batches the ledger
// holds.
const stateCounts = `
CREATE TABLE batch_state_counts (
	state TEXT PRIMARY KEY,
	n     INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO batch_state_counts (state, n) SELECT state, COUNT(*) FROM batches GROUP BY state;
CREATE TRIGGER batches_count_insert AFTER INSERT ON batches BEGIN
	INSERT OR IGNORE INTO batch_state_counts (state, n) VALUES (NEW.state, 0);
	UPDATE batch_state_counts SET n = n + 1 WHERE state = NEW.state;
END;
CREATE TRIGGER batches_count_update AFTER UPDATE OF state ON batches WHEN OLD.state <> NEW.state BEGIN
	UPDATE batch_state_counts SET n = n - 1 WHERE state = OLD.state;
	INSERT OR IGNORE INTO batch_state_counts (state, n) VALUES (NEW.state, 0);
	UPDATE batch_state_counts SET n = n + 1 WHERE state = NEW.state;
END;
CREATE TRIGGER batches_count_delete AFTER DELETE ON batches BEGIN
	UPDATE batch_state_counts SET n = n - 1 WHERE state = OLD.state;
END;
`

// keepStateCounts creates the counts and their triggers in a database
// that lacks them, counting the batches already there. It runs in one
// immediate transaction, so two processes opening the file at once cannot
// both count.
func (db *DB) keepStateCounts(ctx context.Context) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'batch_state_counts'`).Scan(&n); err != nil || n > 0 {
			return err
		}
		_, err := tx.ExecContext(ctx, stateCounts)
		return err
	})
}

// CountByState implements sluice.Ledger.
func (l *Ledger) CountByState(ctx context.Context) (map[sluice.State]int, error) {
	rows, err := l.db.sql.QueryContext(ctx, `SELECT state, n FROM batch_state_counts WHERE n > 0`)
	if err != nil {
		return nil, fmt.Errorf("ledger: count by state: %w", err)
	}
	defer rows.Close()
	out := map[sluice.State]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[sluice.State(s)] = n
	}
	return out, rows.Err()
}

// ListBatches implements sluice.Ledger.
func (l *Ledger) ListBatches(ctx context.Context, f sluice.BatchFilter) ([]sluice.Batch, error) {
	q := `SELECT data FROM batches WHERE (? = '' OR state = ?) AND (? = '' OR key = ?) ORDER BY created_at DESC, id`
	args := []any{string(f.State), string(f.State), f.Key, f.Key}
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := l.db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("ledger: list: %w", err)
	}
	defer rows.Close()
	var out []sluice.Batch
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		var b sluice.Batch
		if err := json.Unmarshal([]byte(data), &b); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

func (l *Ledger) modify(ctx context.Context, id string, fn func(tx *sql.Tx, b *sluice.Batch) error) (sluice.Batch, error) {
	var out sluice.Batch
	st, err := l.prepared(ctx, getBatchSQL, putBatchSQL)
	if err != nil {
		return out, err
	}
	err = l.db.tx(ctx, func(tx *sql.Tx) error {
		b, err := getBatch(ctx, tx.StmtContext(ctx, st[0]), id)
		if err != nil {
			return err
		}
		if err := fn(tx, &b); err != nil {
			return err
		}
		b.UpdatedAt = time.Now().UTC()
		out = b
		return putBatch(ctx, tx.StmtContext(ctx, st[1]), b)
	})
	return out, err
}

// UpdateBatch implements sluice.Ledger.
func (l *Ledger) UpdateBatch(ctx context.Context, id string, u sluice.BatchUpdate) (sluice.Batch, error) {
	b, err := l.modify(ctx, id, func(_ *sql.Tx, b *sluice.Batch) error {
		if u.OnlyIfNotTerminal && b.State.Terminal() {
			return nil
		}
		sluice.ApplyUpdate(b, u)
		return nil
	})
	if err != nil {
		return b, fmt.Errorf("ledger: update: %w", err)
	}
	return b, nil
}

func completion(b *sluice.Batch, counted, wasComplete bool) sluice.Completion {
	c := sluice.Completion{Counted: counted, Done: b.DoneChunks, Total: b.TotalChunks}
	c.Complete = b.TotalChunks >= 0 && b.DoneChunks >= b.TotalChunks
	c.Completed = c.Complete && !wasComplete
	if c.Completed && b.ProcessAt.IsZero() {
		b.ProcessAt = time.Now().UTC()
	}
	return c
}

func isComplete(b *sluice.Batch) bool { return b.TotalChunks >= 0 && b.DoneChunks >= b.TotalChunks }

// SetTotal implements sluice.Ledger.
func (l *Ledger) SetTotal(ctx context.Context, id string, chunks, rows int) (sluice.Completion, error) {
	var c sluice.Completion
	_, err := l.modify(ctx, id, func(_ *sql.Tx, b *sluice.Batch) error {
		was := isComplete(b)
		b.TotalChunks, b.RowsIn = chunks, rows
		c = completion(b, false, was)
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("ledger: set total: %w", err)
	}
	return c, nil
}

// ChunkDone implements sluice.Ledger.
func (l *Ledger) ChunkDone(ctx context.Context, id string, s sluice.ChunkStats) (sluice.Completion, error) {
	var c sluice.Completion
	st, err := l.prepared(ctx, chunkDoneSQL)
	if err != nil {
		return c, err
	}
	_, err = l.modify(ctx, id, func(tx *sql.Tx, b *sluice.Batch) error {
		res, err := tx.StmtContext(ctx, st[0]).ExecContext(ctx, id, s.Chunk)
		if err != nil {
			return err
		}
		was := isComplete(b)
		n, _ := res.RowsAffected()
		if n == 1 {
			b.DoneChunks++
			b.RowsOut += s.RowsOut
			b.RowsRejected += s.RowsRejected
			for r, k := range s.Reasons {
				if b.Reasons == nil {
					b.Reasons = map[string]int{}
				}
				b.Reasons[r] += k
			}
		}
		c = completion(b, n == 1, was)
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("ledger: chunk done: %w", err)
	}
	return c, nil
}

// ChunkCounted implements sluice.ChunkChecker.
func (l *Ledger) ChunkCounted(ctx context.Context, id string, chunk int) (bool, error) {
	var n int
	st, err := l.prepared(ctx, chunkCountedSQL)
	if err == nil {
		err = st[0].QueryRowContext(ctx, id, chunk).Scan(&n)
	}
	if err != nil {
		return false, fmt.Errorf("ledger: chunk %d of batch %q counted: %w", chunk, id, err)
	}
	return n > 0, nil
}
