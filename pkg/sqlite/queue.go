package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/sluicehq/sluice/pkg/tracing"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// QueueOptions configures a queue.
type QueueOptions struct {
	// MaxReceive is how many receives a message gets before the next
	// receive moves it to the dead-letter queue instead; 0 means never.
	MaxReceive int
	// DeadLetter names the dead-letter queue; default: the name + "-dlq".
	DeadLetter string
}

// Queue is a sluice.Queue in a table. A receive is one UPDATE ... RETURNING
// that claims the oldest visible rows, so two receivers never get the same
// message while it is invisible.
type Queue struct {
	db   *DB
	name string
	opt  QueueOptions
}

var _ sluice.Queue = (*Queue)(nil)

// pollEvery bounds how long a long poll sleeps without looking: messages
// also become visible when a timeout passes, or when another process sends.
const pollEvery = 100 * time.Millisecond

// Queue returns the named queue.
func (db *DB) Queue(name string, opt QueueOptions) *Queue {
	if opt.DeadLetter == "" {
		opt.DeadLetter = name + "-dlq"
	}
	return &Queue{db: db, name: name, opt: opt}
}

// Name implements sluice.Queue.
func (q *Queue) Name() string { return q.name }

// DeadLetterQueue returns the queue's dead-letter queue.
func (q *Queue) DeadLetterQueue() *Queue { return q.db.Queue(q.opt.DeadLetter, QueueOptions{}) }

func nowNanos() int64 { return time.Now().UnixNano() }

// Send implements sluice.Queue.
func (q *Queue) Send(ctx context.Context, body []byte) error { return q.SendBatch(ctx, [][]byte{body}) }

// SendBatch implements sluice.Queue.
func (q *Queue) SendBatch(ctx context.Context, bodies [][]byte) error {
	if len(bodies) == 0 {
		return nil
	}
	now := nowNanos()
	// The sender's trace context, NULL when tracing is off.
	tp := sql.NullString{String: tracing.Inject(ctx)}
	tp.Valid = tp.String != ""
	err := q.db.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO queue_messages (queue, body, sent_at, visible_at, trace) VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, b := range bodies {
			if _, err := st.ExecContext(ctx, q.name, b, now, now, tp); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue %s: send: %w", q.name, err)
	}
	q.db.signal(q.name)
	return nil
}

// Receive implements sluice.Queue.
func (q *Queue) Receive(ctx context.Context, max int, visibility, wait time.Duration) ([]sluice.Message, error) {
	if max <= 0 {
		max = 1
	}
	deadline := time.Now().Add(wait)
	for {
		woken := q.db.wait(q.name)
		msgs, err := q.receiveReady(ctx, max, visibility)
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		t := time.NewTimer(min(left, pollEvery))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-woken:
		case <-t.C:
		}
		t.Stop()
	}
}

// The receive's statements, prepared once per database (DB.prepared):
// every stage's consumer runs them for each message and each poll.
const (
	// spentSQL moves to the dead-letter queue those of the next ?6
	// messages a receive would return that have had their ?7 receives:
	// what SQS's redrive policy does on the receive after the last one
	// allowed. Only that window is looked at, through the ready index:
	// looking at every visible message for a spent one cost each receive
	// a read of the whole backlog (176 µs with 1,000 chunks queued).
	spentSQL = `UPDATE queue_messages
				SET queue = ?1, receive_count = 0, visible_at = ?2, receipt = NULL,
				    dead_reason = ?3
				WHERE id IN (SELECT id FROM queue_messages
				             WHERE queue = ?4 AND visible_at <= ?5 ORDER BY visible_at, id LIMIT ?6)
				  AND receive_count >= ?7`
	receiveSQL = `UPDATE queue_messages
			SET visible_at = ?, receive_count = receive_count + 1,
			    receipt = CAST(id AS TEXT) || '.' || lower(hex(randomblob(8)))
			WHERE id IN (SELECT id FROM queue_messages
			             WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, id LIMIT ?)
			RETURNING id, body, receive_count, receipt, sent_at, COALESCE(trace, '')`
	// readySQL looks, without the write lock, for a message to receive.
	readySQL  = `SELECT EXISTS (SELECT 1 FROM queue_messages WHERE queue = ? AND visible_at <= ?)`
	deleteSQL = `DELETE FROM queue_messages WHERE id = ? AND receipt = ? AND queue = ?`
	extendSQL = `UPDATE queue_messages SET visible_at = ? WHERE id = ? AND receipt = ? AND queue = ?`
)

// moveSpent dead-letters the spent messages among the next max a receive
// would return, window after window until one holds none, so the receive
// that follows returns no spent message.
func (q *Queue) moveSpent(ctx context.Context, spent *sql.Stmt, now int64, max int) (int64, error) {
	reason := fmt.Sprintf("received %d times without success (max receive count)", q.opt.MaxReceive)
	var moved int64
	for {
		res, err := spent.ExecContext(ctx, q.opt.DeadLetter, now, reason, q.name, now, max, q.opt.MaxReceive)
		if err != nil {
			return moved, err
		}
		n, _ := res.RowsAffected()
		if n == 0 {
			return moved, nil
		}
		moved += n
	}
}

// receiveReady receives when a message is visible. The look first is a
// read: an idle stage's consumer looks every pollEvery while a batch runs,
// and a receive in a write transaction each time took the database's one
// connection from the workers for three times as long (BenchmarkEmptyPoll).
func (q *Queue) receiveReady(ctx context.Context, max int, visibility time.Duration) ([]sluice.Message, error) {
	ready, err := q.db.prepared(ctx, readySQL)
	if err != nil {
		return nil, fmt.Errorf("queue %s: receive: %w", q.name, err)
	}
	var visible bool
	if err := ready.QueryRowContext(ctx, q.name, nowNanos()).Scan(&visible); err != nil {
		return nil, fmt.Errorf("queue %s: receive: %w", q.name, err)
	}
	if !visible {
		return nil, nil
	}
	return q.receiveOnce(ctx, max, visibility)
}

func (q *Queue) receiveOnce(ctx context.Context, max int, visibility time.Duration) ([]sluice.Message, error) {
	now := nowNanos()
	var out []sluice.Message
	spent, err := q.db.prepared(ctx, spentSQL)
	if err != nil {
		return nil, fmt.Errorf("queue %s: receive: %w", q.name, err)
	}
	receive, err := q.db.prepared(ctx, receiveSQL)
	if err != nil {
		return nil, fmt.Errorf("queue %s: receive: %w", q.name, err)
	}
	var moved int64
	err = q.db.tx(ctx, func(tx *sql.Tx) error {
		out, moved = out[:0], 0
		if q.opt.MaxReceive > 0 {
			var err error
			if moved, err = q.moveSpent(ctx, tx.StmtContext(ctx, spent), now, max); err != nil {
				return err
			}
		}
		rows, err := tx.StmtContext(ctx, receive).QueryContext(ctx, now+int64(visibility), q.name, now, max)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var m sluice.Message
			var id, sent int64
			if err := rows.Scan(&id, &m.Body, &m.ReceiveCount, &m.Receipt, &sent, &m.Trace); err != nil {
				return err
			}
			m.ID = strconv.FormatInt(id, 10)
			m.SentAt = time.Unix(0, sent)
			out = append(out, m)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("queue %s: receive: %w", q.name, err)
	}
	if moved > 0 {
		q.db.signal(q.opt.DeadLetter)
	}
	// RETURNING gives rows in no promised order; receivers expect oldest first.
	sortByID(out)
	return out, nil
}

func sortByID(ms []sluice.Message) {
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && idNum(ms[j].ID) < idNum(ms[j-1].ID); j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}

func idNum(id string) int64 { n, _ := strconv.ParseInt(id, 10, 64); return n }

func receiptID(receipt string) (int64, error) {
	i := strings.IndexByte(receipt, '.')
	if i <= 0 {
		return 0, fmt.Errorf("malformed receipt handle %q", receipt)
	}
	return strconv.ParseInt(receipt[:i], 10, 64)
}

// ErrStaleReceipt is returned by Extend when the message was deleted, moved,
// or received again by someone else.
var ErrStaleReceipt = errors.New("receipt handle is no longer valid")

// Extend implements sluice.Queue.
func (q *Queue) Extend(ctx context.Context, receipt string, d time.Duration) error {
	id, err := receiptID(receipt)
	if err != nil {
		return err
	}
	st, err := q.db.prepared(ctx, extendSQL)
	if err != nil {
		return fmt.Errorf("queue %s: extend: %w", q.name, err)
	}
	res, err := st.ExecContext(ctx, nowNanos()+int64(d), id, receipt, q.name)
	if err != nil {
		return fmt.Errorf("queue %s: extend: %w", q.name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("queue %s: extend: %w", q.name, ErrStaleReceipt)
	}
	if d <= 0 {
		q.db.signal(q.name)
	}
	return nil
}

// Delete implements sluice.Queue. As on SQS, deleting with a stale receipt
// succeeds without deleting.
func (q *Queue) Delete(ctx context.Context, receipt string) error {
	id, err := receiptID(receipt)
	if err != nil {
		return err
	}
	st, err := q.db.prepared(ctx, deleteSQL)
	if err != nil {
		return fmt.Errorf("queue %s: delete: %w", q.name, err)
	}
	if _, err := st.ExecContext(ctx, id, receipt, q.name); err != nil {
		return fmt.Errorf("queue %s: delete: %w", q.name, err)
	}
	return nil
}

// DeadLetter implements sluice.Queue.
func (q *Queue) DeadLetter(ctx context.Context, m sluice.Message, reason string) error {
	id, err := receiptID(m.Receipt)
	if err != nil {
		return err
	}
	res, err := q.db.sql.ExecContext(ctx, `UPDATE queue_messages
		SET queue = ?, receive_count = 0, visible_at = ?, receipt = NULL, dead_reason = ?
		WHERE id = ? AND receipt = ? AND queue = ?`,
		q.opt.DeadLetter, nowNanos(), reason, id, m.Receipt, q.name)
	if err != nil {
		return fmt.Errorf("queue %s: dead-letter: %w", q.name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("queue %s: dead-letter: %w", q.name, ErrStaleReceipt)
	}
	q.db.signal(q.opt.DeadLetter)
	return nil
}

// Depth implements sluice.Queue.
func (q *Queue) Depth(ctx context.Context) (sluice.QueueDepth, error) {
	now := nowNanos()
	var d sluice.QueueDepth
	err := q.db.sql.QueryRowContext(ctx, `SELECT
			COALESCE(SUM(visible_at <= ?), 0),
			COALESCE(SUM(visible_at > ? AND receive_count > 0), 0),
			COALESCE(SUM(visible_at > ? AND receive_count = 0), 0)
		FROM queue_messages WHERE queue = ?`, now, now, now, q.name).Scan(&d.Visible, &d.InFlight, &d.Delayed)
	if err != nil {
		return d, fmt.Errorf("queue %s: depth: %w", q.name, err)
	}
	return d, nil
}

// ReleaseInFlight makes every in-flight message visible again. The embedded
// pipeline calls it at start-up: it is the only consumer of its database, so
// whatever was in flight belonged to a process that is gone.
func (q *Queue) ReleaseInFlight(ctx context.Context) (int, error) {
	now := nowNanos()
	res, err := q.db.sql.ExecContext(ctx, `UPDATE queue_messages SET visible_at = ? WHERE queue = ? AND visible_at > ? AND receive_count > 0`, now, q.name, now)
	if err != nil {
		return 0, fmt.Errorf("queue %s: release: %w", q.name, err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		q.db.signal(q.name)
	}
	return int(n), nil
}

// PeekDead implements sluice.Queue: a plain SELECT on the dead-letter
// queue's rows, oldest first, so nothing is received or hidden.
func (q *Queue) PeekDead(ctx context.Context, n int) ([]sluice.DeadMessage, error) {
	rows, err := q.db.sql.QueryContext(ctx, `SELECT id, body, sent_at, COALESCE(dead_reason, '') FROM queue_messages WHERE queue = ? ORDER BY id LIMIT ?`, q.opt.DeadLetter, max(n, 0))
	if err != nil {
		return nil, fmt.Errorf("queue %s: peek dead letters: %w", q.name, err)
	}
	defer rows.Close()
	var out []sluice.DeadMessage
	for rows.Next() {
		var m sluice.DeadMessage
		var id, sent int64
		if err := rows.Scan(&id, &m.Body, &sent, &m.Reason); err != nil {
			return nil, fmt.Errorf("queue %s: peek dead letters: %w", q.name, err)
		}
		m.ID, m.SentAt = strconv.FormatInt(id, 10), time.Unix(0, sent)
		out = append(out, m)
	}
	return out, rows.Err()
}

// Redrive implements sluice.Queue in one UPDATE, so it cannot duplicate
// either. Messages in flight in the dead-letter queue stay where they are,
// as on SQS.
func (q *Queue) Redrive(ctx context.Context) (int, error) {
	now := nowNanos()
	res, err := q.db.sql.ExecContext(ctx, `UPDATE queue_messages SET queue = ?, receive_count = 0, visible_at = ?, receipt = NULL, dead_reason = NULL WHERE queue = ? AND visible_at <= ?`, q.name, now, q.opt.DeadLetter, now)
	if err != nil {
		return 0, fmt.Errorf("queue %s: redrive: %w", q.name, err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		q.db.signal(q.name)
	}
	return int(n), nil
}
