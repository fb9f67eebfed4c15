package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Catalog is a sluice.Catalog in the database: one row per key, the other
// columns packed into a blob of length-prefixed strings.
type Catalog struct{ db *DB }

var (
	_ sluice.Catalog       = (*Catalog)(nil)
	_ sluice.CatalogLoader = (*Catalog)(nil)
)

// Catalog returns the database's reference catalog.
func (db *DB) Catalog() *Catalog { return &Catalog{db: db} }

// ErrNoReference is returned by a catalog that was never loaded.
var ErrNoReference = errors.New("no reference data loaded (run `sluice reference load REF.csv` or pass --reference)")

// Columns implements sluice.Catalog.
func (c *Catalog) Columns(ctx context.Context) ([]string, error) {
	var js string
	err := c.db.sql.QueryRowContext(ctx, `SELECT columns FROM reference_meta WHERE id = 1`).Scan(&js)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoReference
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	var cols []string
	if err := json.Unmarshal([]byte(js), &cols); err != nil {
		return nil, fmt.Errorf("catalog: columns: %w", err)
	}
	return cols, nil
}

// lookupBatch is how many keys go into one IN (...) query; SQLite allows
// 32766 parameters, and a few hundred keeps each statement cheap to prepare.
const lookupBatch = 500

// Lookup implements sluice.Catalog.
func (c *Catalog) Lookup(ctx context.Context, keys []string) ([][]string, error) {
	out := make([][]string, len(keys))
	where := map[string][]int{}
	for i, k := range keys {
		where[k] = append(where[k], i)
	}
	uniq := make([]string, 0, len(where))
	for k := range where {
		uniq = append(uniq, k)
	}
	slices.Sort(uniq)
	for len(uniq) > 0 {
		n := min(len(uniq), lookupBatch)
		part := uniq[:n]
		uniq = uniq[n:]
		args := make([]any, len(part))
		for i, k := range part {
			args[i] = k
		}
		q := `SELECT k, v FROM reference WHERE k IN (?` + strings.Repeat(",?", len(part)-1) + `)`
		rows, err := c.db.sql.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("catalog: lookup: %w", err)
		}
		for rows.Next() {
			var k string
			var v []byte
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return nil, err
			}
			vals, err := unpack(v)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("catalog: key %q: %w", k, err)
			}
			for _, i := range where[k] {
				out[i] = vals
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("catalog: lookup: %w", err)
		}
	}
	return out, nil
}

// Load implements sluice.CatalogLoader. A key that appears twice with the
// same values is kept once; with different values the load fails, since
// either choice would silently enrich rows with data someone did not mean.
func (c *Catalog) Load(ctx context.Context, columns []string, next func() ([]string, error)) (int, error) {
	if len(columns) < 1 {
		return 0, errors.New("catalog: the reference has no columns")
	}
	cols, _ := json.Marshal(columns)
	n := 0
	err := c.db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM reference; DELETE FROM reference_meta`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO reference_meta (id, columns) VALUES (1, ?)`, string(cols)); err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO reference (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING`)
		if err != nil {
			return err
		}
		defer ins.Close()
		var buf []byte
		for {
			row, err := next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if len(row) != len(columns) {
				return fmt.Errorf("reference row %d has %d fields, the header has %d", n+1, len(row), len(columns))
			}
			buf = pack(buf[:0], row[1:])
			res, err := ins.ExecContext(ctx, row[0], buf)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 0 {
				var old []byte
				if err := tx.QueryRowContext(ctx, `SELECT v FROM reference WHERE k = ?`, row[0]).Scan(&old); err != nil {
					return err
				}
				if string(old) != string(buf) {
					return fmt.Errorf("reference key %q appears twice with different values", row[0])
				}
				continue
			}
			n++
			if n%10000 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: load: %w", err)
	}
	return n, nil
}

func pack(dst []byte, vals []string) []byte {
	for _, v := range vals {
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

func unpack(b []byte) ([]string, error) {
	out := make([]string, 0, 8) // never nil: nil means an unknown key
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, errors.New("corrupt reference value")
		}
		out = append(out, string(b[k:k+int(n)]))
		b = b[k+int(n):]
	}
	return out, nil
}
