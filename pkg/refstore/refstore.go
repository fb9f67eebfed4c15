// Package refstore is the embedded pipeline's reference catalog. Each
// reference version is a read-only hash table in one file, memory-mapped,
// so a lookup costs a hash and one or two memory reads instead of a
// database query. A directory holds the versions:
//
//	DIR/<version>.idx   the table
//	DIR/<version>.json  its description (sluice.RefVersion), written after the table
//	DIR/CURRENT         the ID of the version new batches pin, written last
//
// Every file is written under a temporary name and renamed into place, so
// a load that dies leaves the previous current version in force and its
// own files either absent or unpublished (an .idx without its .json).
//
// File layout of a table (little-endian):
//
//	magic "SLREF001" | u64 slots | u64 keys | u64 dataOffset | u32 ncols | cols (uvarint len + bytes)...
//	slots × u64: record offset + 1 (0 = empty), at an 8-byte aligned offset
//	slots × u32: the hash's high 32 bits, to skip most key compares
//	records: uvarint key length, key, uvarint value length, value
//	(value = the non-key columns, each as uvarint length + bytes)
//
// Beyond memory: the table is mapped, not read, so the kernel keeps in RAM
// the pages lookups touch and drops them under pressure; a reference larger
// than memory still works, at the price of page faults.
package refstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

const magic = "SLREF001"

// ErrNoReference is returned before any version was loaded.
var ErrNoReference = fmt.Errorf("no reference data loaded (run `sluice reference load REF.csv` or pass --reference): %w", sluice.ErrNotFound)

const currentFile = "CURRENT"

// Store is a reference catalog of versions in a directory.
type Store struct {
	dir string

	mu     sync.Mutex
	tables map[string]*table // the versions opened so far
}

var _ sluice.Catalog = (*Store)(nil)

// Open opens the store in dir, creating the directory if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &Store{dir: dir, tables: map[string]*table{}}, nil
}

// Close unmaps every open version.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for id, t := range s.tables {
		errs = append(errs, t.Close())
		delete(s.tables, id)
	}
	return errors.Join(errs...)
}

func (s *Store) path(id, ext string) string { return filepath.Join(s.dir, id+ext) }

// validID keeps an ID read from a file or a batch inside the directory.
func validID(id string) bool {
	return id != "" && !strings.ContainsAny(id, `/\`) && !strings.HasPrefix(id, ".")
}

// Current implements sluice.Catalog.
func (s *Store) Current(ctx context.Context) (sluice.RefVersion, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, currentFile))
	if errors.Is(err, os.ErrNotExist) {
		return sluice.RefVersion{}, ErrNoReference
	}
	if err != nil {
		return sluice.RefVersion{}, err
	}
	return s.describe(strings.TrimSpace(string(b)))
}

func (s *Store) describe(id string) (sluice.RefVersion, error) {
	if !validID(id) {
		return sluice.RefVersion{}, fmt.Errorf("refstore: bad version ID %q: %w", id, sluice.ErrNotFound)
	}
	b, err := os.ReadFile(s.path(id, ".json"))
	if errors.Is(err, os.ErrNotExist) {
		return sluice.RefVersion{}, fmt.Errorf("refstore: reference version %s does not exist (deleted?): %w", id, sluice.ErrNotFound)
	}
	if err != nil {
		return sluice.RefVersion{}, err
	}
	var v sluice.RefVersion
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("refstore: %s: %w", s.path(id, ".json"), err)
	}
	return v, nil
}

// Version implements sluice.Catalog. A version is mapped once and shared.
func (s *Store) Version(ctx context.Context, id string) (sluice.Reference, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tables[id]; ok {
		return t, nil
	}
	if _, err := s.describe(id); err != nil {
		return nil, err
	}
	t, err := openTable(s.path(id, ".idx"))
	if err != nil {
		return nil, err
	}
	s.tables[id] = t
	return t, nil
}

// Versions implements sluice.Catalog: the published versions, oldest
// first (IDs start with the load time).
func (s *Store) Versions(ctx context.Context) ([]sluice.RefVersion, error) {
	names, err := filepath.Glob(filepath.Join(s.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []sluice.RefVersion
	for _, n := range names {
		id := strings.TrimSuffix(filepath.Base(n), ".json")
		if !validID(id) {
			continue
		}
		v, err := s.describe(id)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Delete implements sluice.Catalog: the description goes first, so the
// version is unpublished before its table is removed.
func (s *Store) Delete(ctx context.Context, id string) error {
	cur, err := s.Current(ctx)
	if err == nil && cur.ID == id {
		return fmt.Errorf("refstore: %s is the current reference version; it cannot be deleted", id)
	}
	if !validID(id) {
		return fmt.Errorf("refstore: bad version ID %q", id)
	}
	s.mu.Lock()
	if t, ok := s.tables[id]; ok {
		t.Close()
		delete(s.tables, id)
	}
	s.mu.Unlock()
	if err := os.Remove(s.path(id, ".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Remove(s.path(id, ".idx")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Load implements sluice.CatalogLoader: table, then description, then the
// CURRENT pointer, each renamed into place once whole.
func (s *Store) Load(ctx context.Context, src sluice.RefSource) (sluice.RefVersion, error) {
	if len(src.Columns) < 1 {
		return sluice.RefVersion{}, errors.New("refstore: the reference has no columns")
	}
	if !validID(src.ID) {
		return sluice.RefVersion{}, fmt.Errorf("refstore: bad version ID %q", src.ID)
	}
	tmp, n, err := build(ctx, s.dir, src.Columns, src.Next)
	if err != nil {
		return sluice.RefVersion{}, err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, s.path(src.ID, ".idx")); err != nil {
		return sluice.RefVersion{}, err
	}
	v := sluice.RefVersion{ID: src.ID, Hash: src.Hash, Source: src.Name, Columns: slices.Clone(src.Columns), Rows: n, LoadedAt: time.Now().UTC()}
	desc, _ := json.MarshalIndent(v, "", "  ")
	if err := s.writeFile(src.ID+".json", desc); err != nil {
		return v, err
	}
	if err := s.writeFile(currentFile, []byte(src.ID+"\n")); err != nil {
		return v, err
	}
	return v, nil
}

// writeFile replaces dir/name atomically.
func (s *Store) writeFile(name string, b []byte) error {
	f, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o644); err != nil { // not CreateTemp's 0600, as every data file
		f.Close()
		return err
	}
	_, err = f.Write(b)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(s.dir, name))
}

// SweepTemp removes the temporary files of loads that were killed in the
// store directory dir (a 1M-row load leaves tens of MB). Only the process
// that owns the directory may call it: a load running beside it would lose
// its files.
func SweepTemp(dir string) (int, error) {
	var n int
	var errs []error
	for _, pat := range []string{".refdata-*", ".refstore-*", ".tmp-*"} {
		names, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, name := range names {
			if err := os.Remove(name); err != nil {
				errs = append(errs, err)
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}
