// Package reference turns a reference CSV into a new, immutable version of
// the reference catalog: it reads and validates the file, names the version
// (load time plus content hash), and hands the rows to a catalog, which
// publishes the version only once every row is in. It also collects old
// versions that no unfinished batch uses any more.
//
// Every runtime loads references through here: `sluice reference load`
// (local and --aws), `sluice run --reference`, and the split stage when a
// CSV arrives under reference/ in the bucket.
package reference

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/csvscan"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// Prefix is where a reference CSV is put in the bucket to become the new
// version.
const Prefix = "reference/"

// Limits on one reference record. DynamoDB keeps a key under 2 KiB (with
// the version in front) and an item under 400 KB; the local store has no
// such limit, but a reference must load the same on both backends.
const (
	MaxKeyBytes    = 1024
	MaxRecordBytes = 256 << 10
)

// Result is the outcome of Load.
type Result struct {
	Version sluice.RefVersion
	// Skipped: the file is the current version already (same content).
	Skipped bool
}

// Opener opens the reference file; Load reads it twice (hash, then rows).
type Opener func() (io.ReadCloser, error)

// Load makes the file that open reads the current reference version,
// unless the current version has the same content. name is shown in
// `reference list`. progress, when set, hears the bytes read so far.
func Load(ctx context.Context, cat sluice.Catalog, name string, open Opener, cfg *config.Pipeline, progress func(int64)) (Result, error) {
	hash, err := hashOf(open)
	if err != nil {
		return Result{}, err
	}
	cur, err := cat.Current(ctx)
	switch {
	case err == nil && cur.Hash == hash:
		return Result{Version: cur, Skipped: true}, nil
	case err != nil && !errors.Is(err, sluice.ErrNotFound):
		return Result{}, err
	}
	r, err := open()
	if err != nil {
		return Result{}, err
	}
	defer r.Close()
	// The rows are hashed again as they are read: a file replaced between
	// the two reads fails the load instead of publishing rows under
	// another file's hash.
	h := sha256.New()
	tee := io.TeeReader(r, h)
	cols, next, err := Parse(tee, cfg, progress)
	if err != nil {
		return Result{}, err
	}
	checked := func() ([]string, error) {
		row, err := next()
		if err == io.EOF {
			if _, err := io.Copy(io.Discard, tee); err != nil {
				return nil, err
			}
			if hex.EncodeToString(h.Sum(nil)) != hash {
				return nil, errors.New("the reference file changed while it was being loaded; load it again")
			}
			return nil, io.EOF
		}
		return row, err
	}
	v, err := cat.Load(ctx, sluice.RefSource{ID: NewID(time.Now(), hash), Hash: hash, Name: name, Columns: cols, Next: checked})
	if err != nil {
		return Result{}, err
	}
	return Result{Version: v}, nil
}

// NewID names a version: the load time to the microsecond, so IDs sort by
// age and two loads of one file stay apart, then the content hash's head,
// so a person sees which versions hold the same file.
func NewID(t time.Time, hash string) string {
	return t.UTC().Format("20060102T150405.000000Z") + "-" + hash[:min(12, len(hash))]
}

func hashOf(open Opener) (string, error) {
	r, err := open()
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("reading the reference: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Parse reads the header of a reference CSV and returns its columns (the
// configured key first, the rest in file order) and a function that yields
// the validated rows, then io.EOF. The header must name the key column and
// every configured append column.
func Parse(r io.Reader, cfg *config.Pipeline, progress func(int64)) ([]string, func() ([]string, error), error) {
	sc := csvscan.NewScanner(r, cfg.Delim(), min(cfg.Limits.MaxLineBytes, MaxRecordBytes))
	raw, err := sc.Next()
	if err == io.EOF {
		return nil, nil, invalid("the reference file is empty")
	}
	if err != nil {
		return nil, nil, scanErr("reference header", err)
	}
	// A UTF-8 byte-order mark (spreadsheets write one) is not part of the
	// first column's name, as in input files.
	raw = bytes.TrimPrefix(raw, []byte("\ufeff"))
	hf, _, err := csvscan.Split(csvscan.TrimEOL(raw), cfg.Delim(), nil, nil)
	if err != nil {
		return nil, nil, sluice.Permanent(fmt.Errorf("reference header: %w", err))
	}
	header := make([]string, len(hf))
	for i, f := range hf {
		header[i] = string(f)
	}
	key, cols, err := columns(header, cfg)
	if err != nil {
		return nil, nil, err
	}
	rows := &rowReader{sc: sc, delim: cfg.Delim(), key: key, row: make([]string, len(cols)), progress: progress}
	return cols, rows.next, nil
}

// columns checks the header against the configuration and orders it.
func columns(header []string, cfg *config.Pipeline) (int, []string, error) {
	for i, h := range header {
		if !utf8.ValidString(h) {
			return 0, nil, invalid("the reference header's column %d is not valid UTF-8", i+1)
		}
		if slices.Index(header, h) != i {
			return 0, nil, invalid("the reference header names the column %q twice", h)
		}
	}
	key := slices.Index(header, cfg.Reference.Key)
	if key < 0 {
		return 0, nil, invalid("the reference header has no key column %q (it has %s)", cfg.Reference.Key, quote(header))
	}
	var missing []string
	for _, a := range cfg.Reference.Append {
		if a == cfg.Reference.Key || !slices.Contains(header, a) {
			missing = append(missing, fmt.Sprintf("%q", a))
		}
	}
	if len(missing) > 0 {
		return 0, nil, invalid("the reference header lacks the column(s) %s that reference.append names (it has %s)", strings.Join(missing, ", "), quote(header))
	}
	cols := []string{header[key]}
	for i, h := range header {
		if i != key {
			cols = append(cols, h)
		}
	}
	return key, cols, nil
}

// scanErr marks a record over the size limit, or a quote never closed, as
// the file's fault; other read errors (a network cut) may pass on a retry.
func scanErr(what string, err error) error {
	err = fmt.Errorf("%s: %w", what, err)
	if errors.Is(err, csvscan.ErrTooLong) || errors.Is(err, csvscan.ErrOpenQuote) {
		return sluice.Permanent(err)
	}
	return err
}

// invalid marks a fault of the file: retrying the load cannot help.
func invalid(format string, args ...any) error { return sluice.Permanentf(format, args...) }

func quote(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

// rowReader yields the rows of a reference file, each checked: field
// count, a non-empty key of bounded size, valid UTF-8 without NUL bytes.
type rowReader struct {
	sc       *csvscan.Scanner
	delim    byte
	key      int
	row      []string
	fields   [][]byte
	scratch  []byte
	n        int
	progress func(int64)
}

func (r *rowReader) next() ([]string, error) {
	rec, err := r.sc.Next()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, scanErr("reference", err)
	}
	line := r.sc.Line()
	r.n++
	if r.progress != nil && r.n%50000 == 0 {
		r.progress(r.sc.Offset())
	}
	r.fields, r.scratch, err = csvscan.Split(csvscan.TrimEOL(rec), r.delim, r.fields, r.scratch)
	if err != nil {
		return nil, invalid("reference line %d: %w", line, err)
	}
	if len(r.fields) != len(r.row) {
		return nil, invalid("reference line %d has %d fields, its header has %d", line, len(r.fields), len(r.row))
	}
	k := r.fields[r.key]
	switch {
	case len(k) == 0:
		return nil, invalid("reference line %d has an empty key", line)
	case len(k) > MaxKeyBytes:
		return nil, invalid("reference line %d has a key of %d bytes, over the limit of %d", line, len(k), MaxKeyBytes)
	}
	r.row[0] = string(k)
	j := 1
	for i, f := range r.fields {
		if !utf8.Valid(f) {
			return nil, invalid("reference line %d, field %d is not valid UTF-8 (save the file as UTF-8)", line, i+1)
		}
		if bytes.IndexByte(f, 0) >= 0 {
			return nil, invalid("reference line %d, field %d holds a NUL byte (0x00)", line, i+1)
		}
		if i != r.key {
			r.row[j] = string(f)
			j++
		}
	}
	return r.row, nil
}

// LoadFile is Load of a local file.
func LoadFile(ctx context.Context, cat sluice.Catalog, path string, cfg *config.Pipeline, progress func(int64)) (Result, error) {
	open := func() (io.ReadCloser, error) { return os.Open(path) }
	res, err := Load(ctx, cat, filepath.Base(path), open, cfg, progress)
	if err != nil {
		return res, fmt.Errorf("%s: %w", path, err)
	}
	return res, nil
}
