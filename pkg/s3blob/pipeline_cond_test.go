package s3blob_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/s3blob"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// The split's and the workers' S3 calls, observed on the wire of the
// emulator (gofakes3 behind awstest's If-Match checks) while the embedded
// engine runs with its bucket there.

// runOn is runBatch of a batch that must complete.
func runOn(t *testing.T, st *s3blob.Store, orders, fin string, cfg *config.Pipeline) sluice.Batch {
	t.Helper()
	b := runBatch(t, st, orders, fin, cfg)
	if b.State != sluice.StateCompleted {
		t.Fatalf("batch %s: %s %q", b.ID, b.State, b.Reason)
	}
	return b
}

// runBatch uploads orders under input/orders.csv of st (one PutObject: a
// small file), runs the pipeline with cfg until the batch ends and
// returns it.
func runBatch(t *testing.T, st *s3blob.Store, orders, fin string, cfg *config.Pipeline) sluice.Batch {
	body, err := os.ReadFile(orders)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Put(t.Context(), "input/orders.csv", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	eng := openOn(t, st, filepath.Join(t.TempDir(), "data"), fin, cfg)
	defer eng.Close()
	ev := sluice.ObjectCreated{Version: sluice.MessageVersion, Bucket: st.Bucket(), Key: info.Key, Size: info.Size, ETag: info.ETag, Sequence: "0001"}
	if err := eng.Queues[pipeline.QueueIngest].Send(t.Context(), sluice.Encode(ev)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() { cancel(); <-done }()
	id := sluice.BatchID(st.Bucket(), ev.Key, ev.ETag, ev.Sequence)
	b, err := eng.Wait(ctx, id, nil)
	if err != nil {
		t.Fatalf("batch %s: %s %q, %v", id, b.State, b.Reason, err)
	}
	return b
}

// smallRun is a generated input of 20,000 rows in chunks of 2,000.
func smallRun(t *testing.T) (orders, fin string, cfg *config.Pipeline) {
	orders, fin, _, err := gen.WriteFiles(t.TempDir(), gen.Options{Rows: 20_000, RefRows: 500, Seed: 7, BadRate: 0.02})
	if err != nil {
		t.Fatal(err)
	}
	cfg = config.Default()
	cfg.ChunkRows = 2000
	return orders, fin, cfg
}

// TestChunkRangeIsOneRequest: a worker reads its range with one GetObject
// under If-Match, no HeadObject of the archive before it (issue 13: a Stat
// then a GetRange cost a request per chunk and left a window between
// them). The merge's HEADs of the parts are another matter: only requests
// for the archive are counted.
func TestChunkRangeIsOneRequest(t *testing.T) {
	env := awstest.Shared(t)
	orders, fin, cfg := smallRun(t)
	count := &archiveCalls{next: http.DefaultTransport}
	acfg := env.Config(awstest.S3)
	acfg.HTTPClient = &http.Client{Transport: count}
	st := s3blob.New(acfg, newStore(t).Bucket(), s3blob.WithPathStyle())
	b := runOn(t, st, orders, fin, cfg)
	heads, gets := count.heads.Load(), count.gets.Load()
	t.Logf("%d chunks; of the archive: %d HEAD, %d GET", b.TotalChunks, heads, gets)
	if b.TotalChunks < 5 {
		t.Fatalf("%d chunks; the test needs several", b.TotalChunks)
	}
	if gets < int64(b.TotalChunks) {
		t.Errorf("%d GETs of the archive for %d chunks", gets, b.TotalChunks)
	}
	if heads >= int64(b.TotalChunks) {
		t.Errorf("%d HEADs of the archive for %d chunks: a HEAD per chunk is back", heads, b.TotalChunks)
	}
}

// archiveCalls counts the HEAD and GET requests for objects under
// input_archive/.
type archiveCalls struct {
	next        http.RoundTripper
	heads, gets atomic.Int64
}

func (a *archiveCalls) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.Contains(req.URL.Path, "/"+pipeline.ArchivePrefix) {
		switch req.Method {
		case http.MethodHead:
			a.heads.Add(1)
		case http.MethodGet:
			a.gets.Add(1)
		}
	}
	return a.next.RoundTrip(req)
}

// uploadOnDelete is a transport that, before the first DeleteObject of
// key it carries, runs upload: a new upload landing just as the split
// removes the input it archived.
type uploadOnDelete struct {
	next   http.RoundTripper
	key    string
	fired  atomic.Bool
	upload func()
}

func (u *uploadOnDelete) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodDelete && strings.HasSuffix(req.URL.Path, "/"+u.key) && !u.fired.Swap(true) {
		u.upload()
	}
	return u.next.RoundTrip(req)
}

// TestRemoveInputKeepsRacingUpload: a new upload of the input's name that
// lands after the split decided to remove its input, before the DELETE,
// is left in place: the DELETE is conditional on the batch's ETag (412).
// A Stat and then a plain DELETE removed it.
func TestRemoveInputKeepsRacingUpload(t *testing.T) {
	env := awstest.Shared(t)
	plain := newStore(t)
	orders, fin, cfg := smallRun(t)
	next := []byte("id,x\n1,the next upload\n")
	hook := &uploadOnDelete{next: http.DefaultTransport, key: "input/orders.csv", upload: func() {
		if _, err := plain.Put(context.Background(), "input/orders.csv", bytes.NewReader(next)); err != nil {
			t.Error(err)
		}
	}}
	acfg := env.Config(awstest.S3)
	acfg.HTTPClient = &http.Client{Transport: hook}
	st := s3blob.New(acfg, plain.Bucket(), s3blob.WithPathStyle())
	runOn(t, st, orders, fin, cfg)
	if !hook.fired.Load() {
		t.Fatal("the split made no DeleteObject of its input; the test raced nothing")
	}
	if got := read(t, plain, "input/orders.csv"); !bytes.Equal(got, next) {
		t.Fatalf("input/orders.csv holds %d bytes, not the next upload (%v)", len(got), got[:min(len(got), 40)])
	}
}

// uploadOnCopy is a transport that, before the first CopyObject from
// key it carries, runs upload: a new upload landing between the split's
// look at its input and the archive copy.
type uploadOnCopy struct {
	next   http.RoundTripper
	key    string
	fired  atomic.Bool
	upload func()
}

func (u *uploadOnCopy) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.Contains(req.Header.Get("X-Amz-Copy-Source"), u.key) && !u.fired.Swap(true) {
		u.upload()
	}
	return u.next.RoundTrip(req)
}

// TestArchiveRefusesRacingUpload: an upload that replaces the input after
// the split found it to be the batch's, before the archive copy, is not
// archived as this batch's input (the copy is conditional on the event's
// ETag): the batch fails saying its file was replaced, and the new upload
// stays for its own batch. An unconditional copy archived the new upload,
// and the batch completed with another file's rows.
func TestArchiveRefusesRacingUpload(t *testing.T) {
	env := awstest.Shared(t)
	plain := newStore(t)
	orders, fin, cfg := smallRun(t)
	next := []byte("id,x\n1,the next upload\n")
	hook := &uploadOnCopy{next: http.DefaultTransport, key: "input/orders.csv", upload: func() {
		if _, err := plain.Put(context.Background(), "input/orders.csv", bytes.NewReader(next)); err != nil {
			t.Error(err)
		}
	}}
	acfg := env.Config(awstest.S3)
	acfg.HTTPClient = &http.Client{Transport: hook}
	st := s3blob.New(acfg, plain.Bucket(), s3blob.WithPathStyle())
	b := runBatch(t, st, orders, fin, cfg)
	if !hook.fired.Load() {
		t.Fatal("the split made no copy of its input; the test raced nothing")
	}
	if b.State != sluice.StateFailed || !strings.Contains(b.Reason, "replaced by another upload") {
		t.Fatalf("batch whose input was replaced before its archive: %s %q; want failed, saying so", b.State, b.Reason)
	}
	if got := read(t, plain, "input/orders.csv"); !bytes.Equal(got, next) {
		t.Fatalf("input/orders.csv holds %d bytes, not the next upload", len(got))
	}
	if st, err := plain.Stat(t.Context(), pipeline.ArchiveKey(b)); err == nil {
		t.Fatalf("the batch has an archive (%+v): the next upload was archived as its input", st)
	}
}

// uploadOnGet is a transport that, before the first GET of key it
// carries, runs upload.
type uploadOnGet struct {
	next   http.RoundTripper
	key    string
	fired  atomic.Bool
	upload func()
}

func (u *uploadOnGet) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/"+u.key) && !u.fired.Swap(true) {
		u.upload()
	}
	return u.next.RoundTrip(req)
}

// TestCopiesSplitRefusesRacingUpload: in copies mode the split reads
// input/<key> in place. A valid upload replacing it after the split looked,
// before its read, is not split as this batch's (the read is under the
// event's ETag): the batch fails saying its file was replaced, and the new
// upload stays. An unconditional read completed the batch with the new
// file's rows.
func TestCopiesSplitRefusesRacingUpload(t *testing.T) {
	env := awstest.Shared(t)
	plain := newStore(t)
	orders, fin, cfg := smallRun(t)
	cfg.CopyChunks = true
	nextPath, _, _, err := gen.WriteFiles(t.TempDir(), gen.Options{Rows: 3000, RefRows: 500, Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	next, err := os.ReadFile(nextPath)
	if err != nil {
		t.Fatal(err)
	}
	hook := &uploadOnGet{next: http.DefaultTransport, key: "input/orders.csv", upload: func() {
		if _, err := plain.Put(context.Background(), "input/orders.csv", bytes.NewReader(next)); err != nil {
			t.Error(err)
		}
	}}
	acfg := env.Config(awstest.S3)
	acfg.HTTPClient = &http.Client{Transport: hook}
	st := s3blob.New(acfg, plain.Bucket(), s3blob.WithPathStyle())
	b := runBatch(t, st, orders, fin, cfg)
	if !hook.fired.Load() {
		t.Fatal("the split made no GET of its input; the test raced nothing")
	}
	if b.State != sluice.StateFailed || !strings.Contains(b.Reason, "replaced by another upload") {
		t.Fatalf("batch whose input was replaced before the split read it: %s %q, %d rows in; want failed, saying so", b.State, b.Reason, b.RowsIn)
	}
	if got := read(t, plain, "input/orders.csv"); !bytes.Equal(got, next) {
		t.Fatalf("input/orders.csv holds %d bytes, not the next upload", len(got))
	}
}
