package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// Submit hands the local file at path to the pipeline under name, as
// `sluice run FILE` does (the embedded engine's SubmitAs): the file goes
// under input/ and the splitter is told; the same file while its batch is
// unfinished finds that batch; a file whose last batch ended starts a new
// one.
type Submit func(ctx context.Context, path, name string) (Upload, error)

// ETag is the ETag (and size) the pipeline's bucket gives the file at
// path: fsblob.ETagOfFile for the local pipeline.
type ETag func(path string) (etag string, size int64, err error)

// EngineUploader hands uploads to a local pipeline through Submit. It sees
// the pipeline only through its ports, to refuse an upload that would pull
// a file from under its own batch.
type EngineUploader struct {
	Dir    string // the data directory; uploads are spooled under Dir/uploads/
	Ledger sluice.Ledger
	Blobs  sluice.BlobStore
	Submit Submit
	ETag   ETag
	mu     sync.Mutex // one submission at a time: the busy check and Submit go together
}

// NewEngineUploader returns an uploader that spools under dir. It removes
// what uploads cut short by a process that died left behind (older than a
// day).
func NewEngineUploader(dir string, ledger sluice.Ledger, blobs sluice.BlobStore, submit Submit, etag ETag) *EngineUploader {
	base := filepath.Join(dir, "uploads")
	if ents, err := os.ReadDir(base); err == nil {
		for _, e := range ents {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > 24*time.Hour {
				os.RemoveAll(filepath.Join(base, e.Name()))
			}
		}
	}
	return &EngineUploader{Dir: dir, Ledger: ledger, Blobs: blobs, Submit: submit, ETag: etag}
}

// Upload implements Uploader. The file is first written under the data
// directory's uploads/ (Submit takes a path and names the batch after its
// base name), then submitted, then removed.
func (u *EngineUploader) Upload(ctx context.Context, name string, r io.Reader, size int64) (Upload, error) {
	base := filepath.Join(u.Dir, "uploads")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return Upload{}, err
	}
	tmp, err := os.MkdirTemp(base, "upload-")
	if err != nil {
		return Upload{}, err
	}
	defer os.RemoveAll(tmp)
	// Not under name itself: a name S3 accepts (up to ~1,000 bytes) can be
	// longer than a local file name may be; SubmitAs keeps the name.
	p := filepath.Join(tmp, "upload")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return Upload{}, err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Upload{}, fmt.Errorf("receiving %s: %w", name, err)
	}
	if size >= 0 && n != size {
		return Upload{}, errorf(400, "%s: received %d bytes of the %d announced", name, n, size)
	}

	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.busy(ctx, name, p); err != nil {
		return Upload{}, err
	}
	return u.Submit(ctx, p, name)
}

// busy refuses a different file under a name whose input is still waiting
// in input/ (not yet split and archived) or whose batch is unfinished:
// replacing it would pull the file from under its own batch.
func (u *EngineUploader) busy(ctx context.Context, name, path string) error {
	etag, _, err := u.ETag(path)
	if err != nil {
		return err
	}
	key := pipeline.InputPrefix + pipeline.SafeName(name)
	bs, err := u.Ledger.ListBatches(ctx, sluice.BatchFilter{Key: key, FieldsOnly: true})
	if err != nil {
		return err
	}
	for _, b := range bs {
		if !b.State.Terminal() && b.ETag != etag {
			return ErrBusy
		}
	}
	info, err := u.Blobs.Stat(ctx, key)
	if errors.Is(err, sluice.ErrNotFound) || err == nil && info.ETag == etag {
		return nil
	}
	if err != nil {
		return err
	}
	// Another file waits in input/. It is in the way unless its batch has
	// ended (a batch that died before archiving leaves its input behind).
	for _, b := range bs {
		if b.ETag == info.ETag && b.State.Terminal() {
			return nil
		}
	}
	return ErrBusy
}
