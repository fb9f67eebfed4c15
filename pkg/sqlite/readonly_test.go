package sqlite_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

// dirState is the names, sizes and times of a directory's files.
func dirState(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Name()+" "+info.ModTime().String()+" "+info.Mode().String()+" "+itoa(info.Size()))
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestOpenReadOnlyCreatesNothing: the read-only open of issue 11 item 6.
// A missing database is an error that names it and creates nothing; an
// existing one is read without a single file in its directory changing,
// and a write through it fails.
func TestOpenReadOnlyCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.db")
	if _, err := sqlite.OpenReadOnly(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing database: %v, want fs.ErrNotExist", err)
	}
	if got := dirState(t, dir); len(got) != 0 {
		t.Fatalf("a read-only open of a missing database created %v", got)
	}
	missing := filepath.Join(dir, "nowhere", "sluice.db")
	if _, err := sqlite.OpenReadOnly(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing directory: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("the missing directory was created")
	}

	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if _, _, err := db.Ledger().CreateBatch(t.Context(), sluice.Batch{ID: "b1", Key: "input/a.csv", Name: "a.csv", State: sluice.StateSplitting, TotalChunks: -1, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.Queue("ingest", sqlite.QueueOptions{}).Send(t.Context(), []byte("m")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := dirState(t, dir)
	time.Sleep(20 * time.Millisecond) // so a rewrite would show in the times

	ro, err := sqlite.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := ro.Ledger().GetBatch(t.Context(), "b1"); err != nil || b.Name != "a.csv" {
		t.Fatalf("read %+v %v", b, err)
	}
	if bs, err := ro.Ledger().ListBatches(t.Context(), sluice.BatchFilter{}); err != nil || len(bs) != 1 {
		t.Fatalf("list %d %v", len(bs), err)
	}
	if _, err := ro.Queue("ingest", sqlite.QueueOptions{}).PeekDead(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	if err := ro.Queue("ingest", sqlite.QueueOptions{}).Send(t.Context(), []byte("x")); err == nil {
		t.Fatal("a write through the read-only database succeeded")
	}
	ro.Close()
	if after := dirState(t, dir); !slices.Equal(before, after) {
		t.Fatalf("the read-only open changed the directory:\nbefore %v\nafter  %v", before, after)
	}

	// While a writer has the database open, a reader sees what it
	// committed (through the writer's WAL) and adds no file.
	w, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, _, err := w.Ledger().CreateBatch(t.Context(), sluice.Batch{ID: "b2", Key: "input/b.csv", Name: "b.csv", State: sluice.StateSplitting, TotalChunks: -1, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	names := func() (n []string) {
		for _, s := range dirState(t, dir) {
			n = append(n, strings.Fields(s)[0])
		}
		return n
	}
	during := names()
	ro, err = sqlite.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := ro.Ledger().GetBatch(t.Context(), "b2"); err != nil || b.Name != "b.csv" {
		t.Fatalf("read beside a writer: %+v %v", b, err)
	}
	ro.Close()
	if got := names(); !slices.Equal(got, during) {
		t.Fatalf("files %v, before the read %v", got, during)
	}

	// A file that is not a Sluice database is named, not half-read.
	other := filepath.Join(dir, "other.db")
	os.WriteFile(other, []byte("not a database at all, just text padding it out to a page..."), 0o644)
	if _, err := sqlite.OpenReadOnly(other); err == nil {
		t.Fatal("a text file opened as a database")
	}
}
