package pipeline_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

type rig struct {
	d      *pipeline.Deps
	notify *sqlite.Queue
}

func newRig(t *testing.T) rig {
	dir := t.TempDir()
	db, err := sqlite.Open(filepath.Join(dir, "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	blobs, err := fsblob.New(filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	n := db.Queue("notify", sqlite.QueueOptions{})
	return rig{d: &pipeline.Deps{Blobs: blobs, Ledger: db.Ledger(), Notifies: n, Config: config.Default()}, notify: n}
}

func (r rig) notifies(t *testing.T) int {
	d, err := r.notify.Depth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d.Visible + d.Delayed
}

// TestDeadLetteredFailsTheMessagesBatch: whatever stage a message died in,
// its batch fails with the cause as the reason; the failure email is asked
// for unless the notifier itself is what failed; the input is archived
// only by a split; an ended batch and a message naming no batch are left.
func TestDeadLetteredFailsTheMessagesBatch(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		stage    string
		body     func(b sluice.Batch) []byte
		state    sluice.State
		notifies int
		archived bool
		fails    bool
	}{
		{"split", func(b sluice.Batch) []byte {
			return sluice.Encode(sluice.ObjectCreated{Version: 1, Bucket: "bucket", Key: b.Key, ETag: b.ETag, Sequence: b.Sequence})
		}, sluice.StateSplitting, 1, true, true},
		{"process", func(b sluice.Batch) []byte {
			return sluice.Encode(sluice.ChunkReady{Version: 1, BatchID: b.ID, Chunk: 3})
		}, sluice.StateProcessing, 1, false, true},
		{"merge", func(b sluice.Batch) []byte { return sluice.Encode(sluice.BatchReady{Version: 1, BatchID: b.ID}) },
			sluice.StateMerging, 1, false, true},
		{"notify", func(b sluice.Batch) []byte { return sluice.Encode(sluice.BatchReady{Version: 1, BatchID: b.ID}) },
			sluice.StateNotifying, 0, false, true},
		{"process", func(b sluice.Batch) []byte {
			return sluice.Encode(sluice.ChunkReady{Version: 1, BatchID: b.ID, Chunk: 3})
		}, sluice.StateCompleted, 0, false, false},
		{"split", func(sluice.Batch) []byte { return []byte("{not json") }, sluice.StateSplitting, 0, false, false},
	}
	for _, c := range cases {
		t.Run(c.stage+"/"+string(c.state), func(t *testing.T) {
			r := newRig(t)
			key := "input/orders.csv"
			info, err := r.d.Blobs.Put(ctx, key, strings.NewReader("uuid\n1\n"))
			if err != nil {
				t.Fatal(err)
			}
			// The batch's ETag is its upload's: the split archives input/<key>
			// only while it holds that upload.
			b := sluice.Batch{Bucket: "bucket", Key: key, Name: "orders.csv", ETag: info.ETag, Sequence: "1", CreatedAt: time.Now()}
			b.ID = sluice.BatchID(r.d.Blobs.Bucket(), b.Key, b.ETag, b.Sequence)
			if _, _, err := r.d.Ledger.CreateBatch(ctx, b); err != nil {
				t.Fatal(err)
			}
			if c.state != sluice.StateSplitting {
				if _, err := r.d.Ledger.UpdateBatch(ctx, b.ID, sluice.BatchUpdate{State: c.state}); err != nil {
					t.Fatal(err)
				}
			}
			r.d.DeadLettered(ctx, c.stage, sluice.Message{ID: "m1", Body: c.body(b)}, errString("the catalog has no column unitCost"))
			got, err := r.d.Ledger.GetBatch(ctx, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if c.fails != (got.State == sluice.StateFailed) {
				t.Fatalf("state %s, reason %q", got.State, got.Reason)
			}
			if c.fails && (!strings.Contains(got.Reason, "unitCost") || !strings.Contains(got.Reason, c.stage)) {
				t.Errorf("reason %q does not say which stage and why", got.Reason)
			}
			if n := r.notifies(t); n != c.notifies {
				t.Errorf("%d notify messages, want %d", n, c.notifies)
			}
			_, err = r.d.Blobs.Stat(ctx, pipeline.ArchiveKey(got))
			if archived := err == nil; archived != c.archived {
				t.Errorf("archived = %v, want %v", archived, c.archived)
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }
