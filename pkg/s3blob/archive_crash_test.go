package s3blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/s3blob"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// TestSplitCrashAfterArchiveOfMultipartUpload: the input is a multipart
// upload, whose copy S3 gives another ETag than the event's (or a single
// upload archived part by part, as over 5 GiB: the same). The split dies
// after archiving it and removing input/ (split.after_archive); a new
// engine on the same data directory takes the redelivered event, which
// must find the archive to be the batch's (the source ETag CopyIf recorded
// on it) and complete with the embedded run's output, not fail the batch
// as "deleted". An archive that is another upload's (put over it in the
// crash's wake) must still be refused.
//
// The pipeline runs on the embedded engine (SQLite queues and ledger)
// with its bucket on an S3 emulator to which awstest gives S3's multipart
// and copy ETags (s3rver; gofakes3 too, which has no UploadPartCopy for
// the part-by-part copy).
func TestSplitCrashAfterArchiveOfMultipartUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("two pipeline runs on the emulator")
	}
	dir := t.TempDir()
	orders, fin, _, err := gen.WriteFiles(filepath.Join(dir, "gen"), gen.Options{Rows: 100_000, RefRows: 1000, Seed: 13, BadRate: 0.02})
	if err != nil {
		t.Fatal(err)
	}
	wantOut, wantErrs := embeddedRun(t, filepath.Join(dir, "want"), orders, fin)
	for _, c := range []struct {
		name  string
		svc   awstest.Service
		other bool
		opts  []s3blob.Option
	}{
		{"its archive", awstest.S3Copy, false, []s3blob.Option{s3blob.WithPartSize(5 << 20)}},
		{"its archive on gofakes3", awstest.S3, false, []s3blob.Option{s3blob.WithPartSize(5 << 20)}},
		{"another upload's archive", awstest.S3Copy, true, []s3blob.Option{s3blob.WithPartSize(5 << 20)}},
		// One PutObject, archived part by part (copyLarge, as over 5 GiB):
		// the archive's ETag is a multipart one, the event's is not.
		{"its archive copied part by part", awstest.S3Copy, false, []s3blob.Option{s3blob.WithCopyLimit(1 << 20)}},
	} {
		other := c.other
		t.Run(c.name, func(t *testing.T) {
			st := newStoreOn(t, c.svc, c.opts...)
			data := filepath.Join(t.TempDir(), "data")
			ev := upload(t, st, orders)
			b := crashAfterArchive(t, st, data, fin, ev)
			if a, err := st.Stat(t.Context(), pipeline.ArchiveKey(b)); err != nil || a.ETag == ev.ETag {
				t.Fatalf("the archive %+v (%v) has the event's ETag %s: the case tests nothing", a, err, ev.ETag)
			}
			if other {
				// Another file under the archive's key: not a copy of
				// the event's upload.
				if _, err := st.Put(t.Context(), pipeline.ArchiveKey(b), strings.NewReader("id,x\n1,2\n")); err != nil {
					t.Fatal(err)
				}
			}
			b = restart(t, st, data, b.ID)
			if other {
				// Refused either by the split (the archive is not a copy
				// of the event's upload: "deleted") or, when a chunk of
				// the restarted split got there first, by the worker
				// (the archive is not the file the split cut: "replaced").
				if b.State != sluice.StateFailed || !(strings.Contains(b.Reason, "deleted") || strings.Contains(b.Reason, "replaced")) {
					t.Fatalf("batch on another upload's archive: %s %q; want failed, the file deleted or replaced", b.State, b.Reason)
				}
				return
			}
			if b.State != sluice.StateCompleted {
				t.Fatalf("batch %s after the crash: %s (%s)", b.ID, b.State, b.Reason)
			}
			if got := read(t, st, pipeline.OutputKey(b)); !bytes.Equal(got, wantOut) {
				t.Errorf("output: %d bytes, the embedded run's %d", len(got), len(wantOut))
			}
			if got := read(t, st, pipeline.ErrorsKey(b)); !bytes.Equal(got, wantErrs) {
				t.Errorf("error report: %d bytes, the embedded run's %d", len(got), len(wantErrs))
			}
		})
	}
}

// embeddedRun runs orders through a plain embedded engine in dir and
// returns its output and error report.
func embeddedRun(t *testing.T, dir, orders, fin string) (out, errs []byte) {
	eng, err := embedded.Open(dir, config.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
		t.Fatal(err)
	}
	_, b, err := eng.Process(t.Context(), orders, nil, nil)
	if err != nil || b.State != sluice.StateCompleted {
		t.Fatalf("embedded run: %s %q, %v", b.State, b.Reason, err)
	}
	return read(t, eng.Blobs, pipeline.OutputKey(b)), read(t, eng.Blobs, pipeline.ErrorsKey(b))
}

// upload puts orders under input/ (a multipart upload when it is over
// st's part size) and returns the event S3 would send.
func upload(t *testing.T, st *s3blob.Store, orders string) sluice.ObjectCreated {
	f, err := os.Open(orders)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const key = "input/orders.csv"
	info, err := st.Put(t.Context(), key, readOnly{f})
	if err != nil {
		t.Fatal(err)
	}
	return sluice.ObjectCreated{Version: sluice.MessageVersion, Bucket: st.Bucket(), Key: key, Size: info.Size, ETag: info.ETag, Sequence: "0001"}
}

// openOn opens an engine on data with its bucket on st, the reference of
// fin loaded, and cfg (nil: the default configuration).
func openOn(t *testing.T, st *s3blob.Store, data, fin string, cfg *config.Pipeline) *embedded.Engine {
	eng, err := embedded.Open(data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fin != "" {
		if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
			t.Fatal(err)
		}
	}
	eng.Ports.Blobs = st
	// The spool writes outputs in place in a local bucket; on S3 there is
	// none, as in the AWS services.
	eng.Spool = nil
	return eng
}

// crashAfterArchive sends ev to an engine that dies at split.after_archive,
// and returns the batch then.
func crashAfterArchive(t *testing.T, st *s3blob.Store, data, fin string, ev sluice.ObjectCreated) sluice.Batch {
	eng := openOn(t, st, data, fin, nil)
	defer eng.Close()
	crashed := make(chan struct{})
	var once sync.Once
	eng.Fault = func(p string) error {
		if p != pipeline.PointSplitAfterArchive {
			return nil
		}
		once.Do(func() { close(crashed) })
		return errors.New("crash")
	}
	if err := eng.Queues[pipeline.QueueIngest].Send(t.Context(), sluice.Encode(ev)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	select {
	case <-crashed:
	case err := <-done:
		t.Fatalf("the engine stopped before the crash point: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the split never reached split.after_archive")
	}
	cancel()
	<-done
	bs, err := eng.Ledger.ListBatches(t.Context(), sluice.BatchFilter{Key: ev.Key})
	if err != nil || len(bs) != 1 || bs[0].State != sluice.StateSplitting {
		t.Fatalf("after the crash: %+v, %v; want one batch, splitting", bs, err)
	}
	if _, err := st.Stat(t.Context(), ev.Key); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("the input is still under input/ after the archive: %v", err)
	}
	return bs[0]
}

// restart runs a new engine on data until batch id ends.
func restart(t *testing.T, st *s3blob.Store, data, id string) sluice.Batch {
	eng := openOn(t, st, data, "", nil)
	defer eng.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	b, err := eng.Wait(ctx, id, nil)
	cancel()
	<-done
	if err != nil {
		t.Fatalf("waiting for batch %s: %v (%s %q)", id, err, b.State, b.Reason)
	}
	return b
}

func read(t *testing.T, s sluice.BlobStore, key string) []byte {
	t.Helper()
	r, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
