package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/reference"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// pinned is the reference version a batch was created with; id is empty
// when the configuration enriches nothing.
type pinned struct {
	id string
	sluice.Reference
}

// ConfigDigest identifies a pipeline configuration: a batch records the
// digest of the configuration it was created with.
func ConfigDigest(cfg *config.Pipeline) string {
	b, _ := json.Marshal(cfg)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// pin names the reference version a new batch will use: the current one.
// ErrNotFound means none is loaded; the batch is still split (so a file
// with a bad header fails for that), and its first chunk fails it.
func (d *Deps) pin(ctx context.Context) (string, error) {
	if !d.Config.Enriches() || d.Catalog == nil {
		return "", nil
	}
	v, err := d.Catalog.Current(ctx)
	if err != nil {
		return "", err
	}
	return v.ID, nil
}

// noReferenceReason is a batch's failure reason when no reference exists.
const noReferenceReason = "no reference data is loaded, and the configuration enriches rows from it: load one (`sluice reference load`, or put a CSV under " + reference.Prefix + " in the bucket) and upload the file again"

// reference opens the version batch b pinned. A batch created when no
// reference was loaded, or whose version is gone, can never be enriched as
// it should: it fails with the reason. A batch from before versions existed
// (no configuration digest either) uses the current version.
func (w *Worker) reference(ctx context.Context, b sluice.Batch) (pinned, error) {
	if !w.Config.Enriches() {
		return pinned{}, nil
	}
	id := b.RefVersion
	if id == "" && b.ConfigDigest != "" {
		return pinned{}, w.failChunk(ctx, b, noReferenceReason)
	}
	if id == "" {
		v, err := w.Catalog.Current(ctx)
		if err != nil {
			return pinned{}, err
		}
		id = v.ID
	}
	ref, err := w.Catalog.Version(ctx, id)
	if errors.Is(err, sluice.ErrNotFound) {
		return pinned{}, w.failChunk(ctx, b, fmt.Sprintf("the reference version %s that the batch was created with no longer exists", id))
	}
	if err != nil {
		return pinned{}, err
	}
	return pinned{id: id, Reference: ref}, nil
}

// failChunk fails b for reason. The chunk's message is then done: the
// batch's other chunks find it failed and are ignored, and nothing waits in
// a dead-letter queue for a cause no redrive can fix.
func (w *Worker) failChunk(ctx context.Context, b sluice.Batch, reason string) error {
	if err := w.fail(ctx, b, reason); err != nil {
		return err
	}
	return errBatchFailed
}

// errBatchFailed tells Process that the batch was failed and the chunk is
// done.
var errBatchFailed = errors.New("the batch was failed")

// refColumnError: the batch's reference version lacks a column the
// configuration appends (the configuration changed after the load, which
// validated it). Every chunk would fail the same way.
type refColumnError struct{ reason string }

func (e *refColumnError) Error() string { return e.reason }

// failIfRefColumn fails the batch when err is a refColumnError, rather than
// send every chunk to the dead-letter queue; other errors pass through.
func (w *Worker) failIfRefColumn(ctx context.Context, b sluice.Batch, err error) error {
	var rc *refColumnError
	if !errors.As(err, &rc) {
		return err
	}
	if ferr := w.failChunk(ctx, b, rc.reason); !errors.Is(ferr, errBatchFailed) {
		return ferr
	}
	return nil
}

// loadReference makes a CSV put under reference/ the current reference
// version (the split stage does it: it reads the bucket's events). An
// unchanged file is the same version and is skipped, so a redelivered
// event is harmless. Versions no unfinished batch uses are collected after.
func (s Splitter) loadReference(ctx context.Context, ev sluice.ObjectCreated) error {
	log := s.log().With("key", ev.Key)
	if strings.HasSuffix(ev.Key, "/") {
		return nil
	}
	ds, err := datasetOf(ev.Key, reference.Prefix)
	if err != nil {
		return err
	}
	log = log.With("dataset", ds)
	cfg, err := s.Config.ForDataset(ds)
	if err != nil {
		return sluice.Permanentf("a reference file arrived at %s, but %v", ev.Key, err)
	}
	cat, err := s.catalog(ds)
	if err != nil || cat == nil {
		return sluice.Permanentf("a reference file arrived at %s, but dataset %q has no catalog here: %v", ev.Key, ds, err)
	}
	open := func() (io.ReadCloser, error) { return s.Blobs.Get(ctx, ev.Key) }
	start := time.Now()
	res, err := reference.Load(ctx, cat, path.Base(ev.Key), open, cfg, nil)
	switch {
	case errors.Is(err, sluice.ErrNotFound):
		return sluice.PermanentReason(sluice.ReasonMissingObject, fmt.Errorf("reference %s was deleted before it could be loaded: %w", ev.Key, err))
	case sluice.IsPermanent(err):
		log.ErrorContext(ctx, "reference file refused; the current version stays", "error", err)
		return sluice.Permanentf("reference %s: %v", ev.Key, err)
	case err != nil:
		return fmt.Errorf("loading reference %s: %w", ev.Key, err)
	case res.Skipped:
		log.InfoContext(ctx, "reference unchanged: it is the current version already", "version", res.Version.ID)
		return nil
	}
	log.InfoContext(ctx, "reference loaded; new batches use it", "version", res.Version.ID, "rows", res.Version.Rows, "seconds", time.Since(start).Seconds())
	gone, err := reference.Collect(ctx, cat, s.Ledger, reference.Grace, time.Now())
	if err != nil {
		log.WarnContext(ctx, "collecting old reference versions failed; the next load tries again", "error", err)
	} else if len(gone) > 0 {
		log.InfoContext(ctx, "old reference versions collected", "versions", gone)
	}
	return nil
}
