package wire

import (
	"path/filepath"

	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/outbox"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/refstore"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

// The layout of a data directory.
const (
	BucketDir    = "bucket"    // DIR/bucket/: input/, input_archive/, <batch>/...
	DatabaseFile = "sluice.db" // queues and ledger
	ReferenceDir = "reference" // the reference versions (refstore)
	OutboxDir    = "outbox"    // one .eml per batch
	DatasetsDir  = "datasets"  // reference/datasets/<name>/: named reference datasets
)

// Local builds the ports on a data directory. SQLite in WAL mode is safe
// across processes, so the four services may share one directory as
// separate processes; locking it to one engine is the embedded engine's
// job, not this one's. Every stage queue is built, with its dead-letter
// queue after pipeline.MaxReceive receives.
func Local(dir string) (*Ports, error) {
	p := &Ports{Queues: map[string]sluice.Queue{}, DLQs: map[string]sluice.Queue{}, local: true}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	blobs, err := fsblob.New(filepath.Join(dir, BucketDir))
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, blobs.Close) // its marker: other processes' sweeps spare its writes
	db, err := sqlite.Open(filepath.Join(dir, DatabaseFile))
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, db.Close)
	ref, err := refstore.Open(filepath.Join(dir, ReferenceDir))
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, ref.Close)
	mail, err := outbox.New(filepath.Join(dir, OutboxDir))
	if err != nil {
		return nil, err
	}
	p.Blobs, p.Ledger, p.Catalog, p.Mailer = blobs, db.Ledger(), ref, mail
	// Named datasets live beside the default's versions, under
	// reference/datasets/<name>/ (no version file is named "datasets").
	ds := &datasets{open: func(name string) (sluice.Catalog, error) {
		st, err := refstore.Open(filepath.Join(dir, ReferenceDir, DatasetsDir, name))
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, st.Close)
		return st, nil
	}}
	p.Dataset = ds.get
	for _, q := range pipeline.Queues() {
		sq := db.Queue(q, sqlite.QueueOptions{MaxReceive: pipeline.MaxReceive})
		p.Queues[q], p.DLQs[q] = sq, sq.DeadLetterQueue()
	}
	ok = true
	return p, nil
}
