package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

func getBatch(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) (sluice.Batch, error) {
	var data string
	err := q.QueryRowContext(ctx, `SELECT data FROM batches WHERE id = ?`, id).Scan(&data)
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

func putBatch(ctx context.Context, tx *sql.Tx, b sluice.Batch) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE batches SET data = ?, state = ? WHERE id = ?`, string(data), string(b.State), b.ID)
	return err
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
	err = l.db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO batches (id, key, state, created_at, data) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			b.ID, b.Key, string(b.State), b.CreatedAt.UnixNano(), string(data))
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		created = n == 1
		out, err = getBatch(ctx, tx, b.ID)
		return err
	})
	if err != nil {
		return sluice.Batch{}, false, fmt.Errorf("ledger: create batch: %w", err)
	}
	return out, created, nil
}

// GetBatch implements sluice.Ledger.
func (l *Ledger) GetBatch(ctx context.Context, id string) (sluice.Batch, error) {
	return getBatch(ctx, l.db.sql, id)
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
	err := l.db.tx(ctx, func(tx *sql.Tx) error {
		b, err := getBatch(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := fn(tx, &b); err != nil {
			return err
		}
		b.UpdatedAt = time.Now().UTC()
		out = b
		return putBatch(ctx, tx, b)
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
	_, err := l.modify(ctx, id, func(tx *sql.Tx, b *sluice.Batch) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO batch_chunks (batch_id, chunk) VALUES (?, ?) ON CONFLICT DO NOTHING`, id, s.Chunk)
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
	err := l.db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM batch_chunks WHERE batch_id = ? AND chunk = ?`, id, chunk).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("ledger: chunk %d of batch %q counted: %w", chunk, id, err)
	}
	return n > 0, nil
}

// rejectsPerInsert rows go into one INSERT: with modernc's per-statement
// cost, one row per statement made the ledger the worker's bottleneck.
const rejectsPerInsert = 100

// AddRejects implements sluice.Ledger.
func (l *Ledger) AddRejects(ctx context.Context, id string, rows []sluice.RowError) error {
	if len(rows) == 0 {
		return nil
	}
	stmtFor := func(n int) string {
		return `INSERT INTO rejects (batch_id, line, chunk, col, rule, message, raw) VALUES (?, ?, ?, ?, ?, ?, ?)` +
			strings.Repeat(`, (?, ?, ?, ?, ?, ?, ?)`, n-1) +
			` ON CONFLICT (batch_id, line) DO UPDATE SET chunk = excluded.chunk, col = excluded.col, rule = excluded.rule, message = excluded.message, raw = excluded.raw`
	}
	// At most two statements: the full one and the tail's (at most
	// rejectsPerInsert of them over time).
	full, err := l.db.prepared(ctx, stmtFor(rejectsPerInsert))
	if err != nil {
		return fmt.Errorf("ledger: add rejects: %w", err)
	}
	tail := full
	if n := len(rows) % rejectsPerInsert; n > 0 {
		if tail, err = l.db.prepared(ctx, stmtFor(n)); err != nil {
			return fmt.Errorf("ledger: add rejects: %w", err)
		}
	}
	err = l.db.tx(ctx, func(tx *sql.Tx) error {
		args := make([]any, 0, 7*rejectsPerInsert)
		for len(rows) > 0 {
			n := min(len(rows), rejectsPerInsert)
			args = args[:0]
			for _, r := range rows[:n] {
				args = append(args, id, r.Line, r.Chunk, r.Column, r.Rule, r.Message, r.Raw)
			}
			rows = rows[n:]
			st := full
			if n < rejectsPerInsert {
				st = tail
			}
			if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...); err != nil {
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

// Rejects implements sluice.Ledger.
func (l *Ledger) Rejects(ctx context.Context, id string, afterLine int64, limit int) ([]sluice.RowError, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := l.db.sql.QueryContext(ctx, `SELECT line, chunk, col, rule, message, raw FROM rejects WHERE batch_id = ? AND line > ? ORDER BY line LIMIT ?`, id, afterLine, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: rejects: %w", err)
	}
	defer rows.Close()
	var out []sluice.RowError
	for rows.Next() {
		r := sluice.RowError{BatchID: id}
		if err := rows.Scan(&r.Line, &r.Chunk, &r.Column, &r.Rule, &r.Message, &r.Raw); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
