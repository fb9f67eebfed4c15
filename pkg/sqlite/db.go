// Package sqlite holds the embedded adapters that live in one SQLite
// database file: the queues (sluice.Queue) and the ledger (sluice.Ledger). It uses modernc.org/sqlite, a pure
// Go driver, so the sluice binary needs no cgo and no system library.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DB is one SQLite database file.
type DB struct {
	sql  *sql.DB
	path string

	mu      sync.Mutex
	waiters map[string]chan struct{} // closed when a queue gets a message

	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt // prepared once, used by many transactions

	// blocks is whether the database has the reject_blocks table: always
	// after Open, not in a read-only open of a database from before it.
	blocks bool
}

const schema = `
CREATE TABLE IF NOT EXISTS queue_messages (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	queue         TEXT    NOT NULL,
	body          BLOB    NOT NULL,
	sent_at       INTEGER NOT NULL,
	visible_at    INTEGER NOT NULL,
	receive_count INTEGER NOT NULL DEFAULT 0,
	receipt       TEXT,
	dead_reason   TEXT
);
CREATE INDEX IF NOT EXISTS queue_messages_ready ON queue_messages (queue, visible_at, id);

CREATE TABLE IF NOT EXISTS batches (
	id         TEXT PRIMARY KEY,
	key        TEXT NOT NULL,
	state      TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	data       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_created ON batches (created_at DESC, id);

CREATE TABLE IF NOT EXISTS batch_chunks (
	batch_id TEXT    NOT NULL,
	chunk    INTEGER NOT NULL,
	PRIMARY KEY (batch_id, chunk)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS batch_scans (
	batch_id TEXT    NOT NULL,
	range    INTEGER NOT NULL,
	PRIMARY KEY (batch_id, range)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rejects (
	batch_id TEXT    NOT NULL,
	line     INTEGER NOT NULL,
	chunk    INTEGER NOT NULL,
	col      TEXT    NOT NULL,
	rule     TEXT    NOT NULL,
	message  TEXT    NOT NULL,
	raw      TEXT    NOT NULL,
	PRIMARY KEY (batch_id, line)
) WITHOUT ROWID;
` + spoolSchema

// Open opens or creates the database at path, in WAL mode so that readers
// (sluice status, the console) never wait for the pipeline's writes.
func Open(path string) (*DB, error) {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(NORMAL)", "foreign_keys(ON)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	sdb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and a single connection
	// turns write contention inside this process into an orderly queue
	// instead of SQLITE_BUSY retries.
	sdb.SetMaxOpenConns(1)
	if _, err := sdb.Exec(schema + blockSchema); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("sqlite: %s: creating schema: %w", path, err)
	}
	if err := addTraceColumn(sdb); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	db := &DB{sql: sdb, path: path, waiters: map[string]chan struct{}{}, blocks: true}
	if err := db.keepStateCounts(context.Background()); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("sqlite: %s: state counts: %w", path, err)
	}
	return db, nil
}

// OpenReadOnly opens an existing database for reading only (SQLite
// mode=ro): it creates no file, no schema and no WAL, so read-only commands
// (sluice status, dlq list) neither change a data directory nor need write
// access to it. A missing file is an error that wraps fs.ErrNotExist.
func OpenReadOnly(path string) (*DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	if _, err := os.Stat(path + "-wal"); errors.Is(err, fs.ErrNotExist) {
		// No -wal file: no process has the database open (a WAL writer
		// keeps it while open). A WAL reader would create -wal and -shm
		// files; immutable=1 reads the file as it is and creates none. A
		// writer that starts meanwhile appends to its own WAL, not to this
		// file, until a checkpoint 1000 pages later.
		q.Set("immutable", "1")
	}
	sdb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	sdb.SetMaxOpenConns(1)
	// sql.Open is lazy: read the schema now so a file that is not a Sluice
	// database fails here, with its name, rather than at the first query.
	var n int
	if err := sdb.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name IN ('batches', 'queue_messages')`).Scan(&n); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("sqlite: reading %s: %w", path, err)
	}
	if n != 2 {
		sdb.Close()
		return nil, fmt.Errorf("sqlite: %s is not a Sluice database (no batches or queue_messages table)", path)
	}
	var blocks int
	if err := sdb.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'reject_blocks'`).Scan(&blocks); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("sqlite: reading %s: %w", path, err)
	}
	return &DB{sql: sdb, path: path, waiters: map[string]chan struct{}{}, blocks: blocks > 0}, nil
}

// Close closes the database.
func (db *DB) Close() error {
	db.stmtMu.Lock()
	for _, st := range db.stmts {
		st.Close()
	}
	db.stmts = nil
	db.stmtMu.Unlock()
	return db.sql.Close()
}

// prepared returns query prepared once for the database. A transaction
// uses it with tx.StmtContext, which reuses the statement on its
// connection: SQLite compiling a hundred-row INSERT for every chunk was a
// third of AddRejects' CPU time (BENCHMARKS.md). Call it outside a
// transaction: the database has one connection, which a transaction holds.
func (db *DB) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if st, ok := db.stmts[query]; ok {
		return st, nil
	}
	st, err := db.sql.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if db.stmts == nil {
		db.stmts = map[string]*sql.Stmt{}
	}
	db.stmts[query] = st
	return st, nil
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

func (db *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// signal wakes receivers waiting on queue.
func (db *DB) signal(queue string) {
	db.mu.Lock()
	if ch, ok := db.waiters[queue]; ok {
		close(ch)
		delete(db.waiters, queue)
	}
	db.mu.Unlock()
}

// wait returns a channel closed at the next send to queue.
func (db *DB) wait(queue string) <-chan struct{} {
	db.mu.Lock()
	defer db.mu.Unlock()
	ch, ok := db.waiters[queue]
	if !ok {
		ch = make(chan struct{})
		db.waiters[queue] = ch
	}
	return ch
}

// addTraceColumn adds queue_messages.trace (a message's W3C traceparent) to
// a database made before tracing; the schema above omits it so that this
// one statement serves both new and old files.
func addTraceColumn(sdb *sql.DB) error {
	var n int
	if err := sdb.QueryRow(`SELECT count(*) FROM pragma_table_info('queue_messages') WHERE name = 'trace'`).Scan(&n); err != nil {
		return fmt.Errorf("reading queue_messages columns: %w", err)
	}
	if n > 0 {
		return nil
	}
	if _, err := sdb.Exec(`ALTER TABLE queue_messages ADD COLUMN trace TEXT`); err != nil {
		return fmt.Errorf("adding queue_messages.trace: %w", err)
	}
	return nil
}
