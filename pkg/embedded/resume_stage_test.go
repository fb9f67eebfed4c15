package embedded_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// countingStore is the engine's own file store, counting the files it is
// asked to stage (copy under a temporary name).
type countingStore struct {
	*fsblob.Store
	staged int
}

func (s *countingStore) StageFile(ctx context.Context, key, path string) (*fsblob.Staged, error) {
	s.staged++
	return s.Store.StageFile(ctx, key, path)
}

// TestResumeStagesNothing: rerunning a file whose batch is unfinished
// resumes the batch after hashing the file, without copying it into the
// store first (a 10 GB input would need 10 GB written and free); so does a
// different file refused as busy. A new upload is still staged once.
func TestResumeStagesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "orders.csv")
	body := "uuid,Country,Item Type\n" + strings.Repeat("0b9a2a44-0ad4-4bd6-8c57-6a2e8bd1cf6e,France,Fruits\n", 100)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	eng, err := embedded.Open(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	fs, ok := eng.Blobs.(*fsblob.Store)
	if !ok {
		t.Fatalf("the embedded store is a %T", eng.Blobs)
	}
	store := &countingStore{Store: fs}
	eng.Blobs = store
	ctx := t.Context()
	first, err := eng.Submit(ctx, path)
	if err != nil || store.staged != 1 {
		t.Fatalf("first Submit = %+v, %v, %d staged; want one copy", first, err, store.staged)
	}
	// The splitter creates the batch and dies: the batch is unfinished.
	d := eng.Deps()
	d.Fault = func(p string) error {
		if p == pipeline.PointSplitAfterCreate {
			return errors.New("crash")
		}
		return nil
	}
	info, err := eng.Blobs.Stat(ctx, first.Key)
	if err != nil {
		t.Fatal(err)
	}
	ev := sluice.ObjectCreated{Bucket: eng.Blobs.Bucket(), Key: first.Key, Size: info.Size, ETag: info.ETag, Sequence: "1"}
	if err := (pipeline.Splitter{Deps: d}).Split(ctx, ev, false); err == nil {
		t.Fatal("the injected crash did not stop the split")
	}
	again, err := eng.Submit(ctx, path)
	if err != nil || !again.Resumed || again.BatchID != first.BatchID {
		t.Fatalf("rerun = %+v, %v; want the batch %s resumed", again, err, first.BatchID)
	}
	if store.staged != 1 {
		t.Fatalf("the rerun staged the file (%d copies in all); a resume must copy nothing", store.staged)
	}
	other := filepath.Join(t.TempDir(), "orders.csv")
	if err := os.WriteFile(other, []byte(body+"0b9a2a44-0ad4-4bd6-8c57-6a2e8bd1cf6f,Brazil,Fruits\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Submit(ctx, other); !errors.Is(err, embedded.ErrBusy) || store.staged != 1 {
		t.Fatalf("a different file under the busy name: %v, %d copies; want ErrBusy and no copy", err, store.staged)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(eng.Path(first.Key)), ".*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left under input/: %v", leftovers)
	}
}
