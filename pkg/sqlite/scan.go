package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// ScanRangeDone implements sluice.Ledger: one row per counted range, in the
// batch's transaction, so a repeat counts nothing and exactly one call sees
// the count reach n.
func (l *Ledger) ScanRangeDone(ctx context.Context, id string, r, n int) (sluice.Completion, error) {
	var c sluice.Completion
	_, err := l.modify(ctx, id, func(tx *sql.Tx, _ *sluice.Batch) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO batch_scans (batch_id, range) VALUES (?, ?) ON CONFLICT DO NOTHING`, id, r)
		if err != nil {
			return err
		}
		added, _ := res.RowsAffected()
		var done int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM batch_scans WHERE batch_id = ?`, id).Scan(&done); err != nil {
			return err
		}
		c = sluice.Completion{Counted: added == 1, Done: done, Total: n, Complete: done >= n, Completed: added == 1 && done == n}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("ledger: scan range done: %w", err)
	}
	return c, nil
}
