package embedded

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// tempFiles name the temporary files of the writers in a data directory,
// by the directory they are written under (relative to the data directory)
// and their name prefix: the bucket's (fsblob) and the outbox's. The
// reference store sweeps its own directory (refstore.SweepTemp, also called
// by Open). A writer with a new temp-name pattern adds it here so the sweep
// at start-up and `sluice gc` find what its killed runs left.
var tempFiles = []struct{ dir, prefix string }{
	{"bucket", fsblob.TempPrefix},
	{"outbox", ".tmp-"},
}

// sweepTemp removes the temporary files of writes whose process died. It
// runs with the directory's lock held, but processes that use the
// directory without it (the local-backend services, the chaos driver) may
// be writing: the bucket's files are told apart by their process's token
// and its marker (fsblob.SweepDead), so that walk also runs beside this
// process's writes; the outbox's names carry no token, so while another
// process holds a marker only those older than fsblob.OrphanAge go. It
// runs before the notifier does.
func (e *Engine) sweepTemp(ctx context.Context, dirs ...string) (fsblob.Swept, error) {
	var all fsblob.Swept
	for _, t := range tempFiles {
		if len(dirs) > 0 && !slices.Contains(dirs, t.dir) {
			continue
		}
		var s fsblob.Swept
		var err error
		if t.prefix == fsblob.TempPrefix {
			s, err = fsblob.SweepDead(ctx, filepath.Join(e.Dir, t.dir), true)
		} else {
			s, err = fsblob.SweepTemp(filepath.Join(e.Dir, t.dir), []string{t.prefix}, e.tempAge())
		}
		all.Paths = append(all.Paths, s.Paths...)
		all.Bytes += s.Bytes
		if err != nil {
			return all, err
		}
	}
	return all, nil
}

// tempAge is how old a temporary file without a token must be to be dead:
// any age, unless another process holds a marker in the bucket.
func (e *Engine) tempAge() time.Duration {
	if others, err := fsblob.OthersLive(filepath.Join(e.Dir, "bucket")); others || err != nil {
		return fsblob.OrphanAge
	}
	return 0
}

// sweepInBackground starts the bucket's sweep: with every batch's output
// kept, it walks thousands of directories (50 ms per thousand batches,
// measured), which a run need not wait for before staging its input.
// Run waits for it before any stage writes (waitSweep); Close stops it
// (stopSweep) and waits for it before the lock is let go.
func (e *Engine) sweepInBackground() {
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	e.swept, e.stopSweep = done, cancel
	go func() {
		defer close(done)
		sw, err := e.sweepTemp(ctx, "bucket")
		if (err != nil && ctx.Err() == nil) || len(sw.Paths) > 0 {
			e.Logger.Info("removed temporary files of writes that died", "count", len(sw.Paths), "bytes", sw.Bytes, "err", err)
		}
		e.sweptBytes, e.sweepErr = sw.Bytes, err
	}()
}

// waitSweep waits for the start-up sweep of the bucket; it reports whether
// the sweep freed any space.
func (e *Engine) waitSweep(ctx context.Context) (freed bool, err error) {
	if e.swept == nil {
		return false, nil
	}
	select {
	case <-e.swept:
		return e.sweptBytes > 0, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// GCItem is one object gc removed, or would remove on a dry run.
type GCItem struct {
	BatchID string `json:"batchId,omitempty"`
	Kind    string `json:"kind"` // intermediate, output, archive, temp
	Path    string `json:"path"`
	Bytes   int64  `json:"bytes"`
}

// GCReport is what GC did.
type GCReport struct {
	Items  []GCItem `json:"items"`
	Bytes  int64    `json:"bytes"`
	DryRun bool     `json:"dryRun"`
}

func (r *GCReport) add(it GCItem) {
	r.Items = append(r.Items, it)
	r.Bytes += it.Bytes
}

type gcKind struct {
	kind     string
	prefixes []string
}

// GC removes what the configured retention lets go of, for every batch
// that ended: intermediates, outputs and archives whose period has passed
// since the batch ended, and the temporary files of dead writes. Batches
// still running are never touched. With dryRun it only reports.
func (e *Engine) GC(ctx context.Context, now time.Time, dryRun bool) (GCReport, error) {
	rep := GCReport{DryRun: dryRun}
	batches, err := e.Ledger.ListBatches(ctx, sluice.BatchFilter{FieldsOnly: true})
	if err != nil {
		return rep, err
	}
	ret := e.Config.Retention
	for _, b := range batches {
		if !b.State.Terminal() {
			continue
		}
		ended := b.NotifiedAt
		if ended.IsZero() {
			ended = b.UpdatedAt
		}
		var kinds []gcKind
		if ret.Intermediates.Expired(ended, now) {
			// With the spool's directory, which only the local store has:
			// a batch killed and never resumed leaves its files there.
			kinds = append(kinds, gcKind{"intermediate", append(pipeline.IntermediatePrefixes(b), pipeline.SpoolPrefix(b.ID))})
		}
		if ret.Outputs.Expired(ended, now) {
			kinds = append(kinds, gcKind{"output", []string{pipeline.OutputPrefix(b)}})
		}
		if ret.Archives.Expired(ended, now) {
			if err := e.gcArchive(ctx, &rep, b, dryRun); err != nil {
				return rep, err
			}
		}
		for _, k := range kinds {
			r, err := pipeline.RemovePrefixes(ctx, e.Blobs, k.prefixes, dryRun)
			if err != nil {
				return rep, err
			}
			for _, o := range r.Objects {
				rep.add(GCItem{BatchID: b.ID, Kind: k.kind, Path: e.Path(o.Key), Bytes: o.Size})
			}
			if k.kind == "intermediate" && e.Spool != nil && !dryRun {
				// A failed batch's spool files were under an intermediate
				// prefix; the spool's state row goes with them (Drop
				// writes nothing when neither is there).
				if err := e.Spool.Drop(ctx, b.ID); err != nil {
					return rep, err
				}
			}
		}
	}
	if !dryRun {
		if _, err := e.waitSweep(ctx); err != nil { // Open's, not to race it
			return rep, err
		}
		sw, err := e.sweepTemp(ctx)
		if err != nil {
			return rep, err
		}
		for _, p := range sw.Paths {
			rep.add(GCItem{Kind: "temp", Path: p})
		}
		rep.Bytes += sw.Bytes
		if err := pruneEmptyDirs(filepath.Join(e.Dir, "bucket")); err != nil {
			e.Logger.Info("left empty directories in place", "reason", err)
		}
	}
	return rep, nil
}

// gcArchive removes a batch's archived input: one key, not a prefix, so
// that an archive whose name merely starts the same stays.
func (e *Engine) gcArchive(ctx context.Context, rep *GCReport, b sluice.Batch, dryRun bool) error {
	key := pipeline.ArchiveKey(b)
	info, err := e.Blobs.Stat(ctx, key)
	if errors.Is(err, sluice.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !dryRun {
		if err := e.Blobs.Delete(ctx, key); err != nil {
			return err
		}
	}
	rep.add(GCItem{BatchID: b.ID, Kind: "archive", Path: e.Path(key), Bytes: info.Size})
	return nil
}

// pruneEmptyDirs removes the directories that removals left empty, deepest
// first; the bucket's root stays. Not while another process holds a
// marker in the bucket: a directory it just made to write in is empty
// too, and its write would fail.
func pruneEmptyDirs(root string) error {
	if others, err := fsblob.OthersLive(root); err != nil {
		return err
	} else if others {
		return errors.New("another process is writing in the bucket")
	}
	var dirs []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != root {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i]) // fails, harmlessly, on a directory that is not empty
	}
	return nil
}
