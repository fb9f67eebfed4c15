// Package format turns the files people send into the CSV stream the split
// cuts, and the CSV parts the workers write into the output format the
// configuration asks for. Inputs: plain CSV, gzip or zstd compressed CSV
// (recognised by their magic bytes, whatever the file is called) and Excel
// .xlsx workbooks. Outputs: CSV, JSON Lines (each optionally gzip or zstd
// compressed) and Parquet.
package format

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/sluicehq/sluice/pkg/config"
)

// BadInput is a whole-file problem found while decoding: the batch fails
// with Reason, nothing is retried.
type BadInput struct{ Reason string }

func (e *BadInput) Error() string { return e.Reason }

func bad(format string, args ...any) error {
	return &BadInput{Reason: fmt.Sprintf(format, args...)}
}

// Kind is what an input file turned out to be.
type Kind string

// Input kinds.
const (
	KindCSV  Kind = "csv"
	KindGzip Kind = "gzip"
	KindZstd Kind = "zstd"
	KindXLSX Kind = "xlsx"
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	zipMagic  = []byte("PK\x03\x04")
)

// Detect names the kind of input from its first bytes.
func Detect(head []byte) Kind {
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return KindGzip
	case bytes.HasPrefix(head, zstdMagic):
		return KindZstd
	case bytes.HasPrefix(head, zipMagic):
		return KindXLSX
	}
	return KindCSV
}

// Opened is an input decoded to CSV text.
type Opened struct {
	io.Reader
	Kind  Kind
	close func() error
}

// Close releases what the decoder holds (a workbook's spool file).
func (o *Opened) Close() error {
	if o.close == nil {
		return nil
	}
	return o.close()
}

// Open decodes r into CSV text. limit bounds the decoded size
// (limits.maxFileBytes): a small gzip can hold terabytes of zeros, so the
// limit that matters is what the split would read, not what was stored.
// tmpDir holds a workbook while it is read ("" is the system's).
func Open(r io.Reader, cfg *config.Pipeline, limit int64, tmpDir string) (*Opened, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(8)
	if IsEncryptedOrXLS(head) {
		return nil, bad("the file is an OLE compound document: an Excel workbook with a password to open, or an old .xls. Remove the password (or save as .xlsx, or export CSV) and send it again")
	}
	kind := Detect(head)
	switch kind {
	case KindGzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, bad("the file starts like gzip but its header is damaged: %v", err)
		}
		// One member only would stop at the first; multistream is what gzip(1) writes for cat a.gz b.gz.
		zr.Multistream(true)
		return &Opened{Reader: &limited{r: zr, kind: kind, left: limit, limit: limit}, Kind: kind, close: zr.Close}, nil
	case KindZstd:
		// The window cap keeps a hostile frame from asking for gigabytes of memory.
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(64<<20), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, bad("the file starts like zstd but cannot be read: %v", err)
		}
		return &Opened{Reader: &limited{r: zr, kind: kind, left: limit, limit: limit}, Kind: kind, close: func() error { zr.Close(); return nil }}, nil
	case KindXLSX:
		return openXLSX(br, cfg, limit, tmpDir)
	}
	if f, ok := r.(fileLike); ok {
		// A plain file keeps random access, which the parallel split uses
		// (ReadAt does not depend on what was read through br).
		return &Opened{Reader: csvFile{br, f}, Kind: KindCSV}, nil
	}
	return &Opened{Reader: br, Kind: KindCSV}, nil
}

type fileLike interface {
	io.ReaderAt
	Stat() (fs.FileInfo, error)
}

// csvFile reads through the peeked buffer, and gives the file's own
// ReadAt and Stat.
type csvFile struct {
	*bufio.Reader
	f fileLike
}

func (c csvFile) ReadAt(p []byte, off int64) (int, error) { return c.f.ReadAt(p, off) }
func (c csvFile) Stat() (fs.FileInfo, error)              { return c.f.Stat() }

// limited counts decompressed bytes and turns the decoder's errors into
// reasons a person can act on.
type limited struct {
	r           io.Reader
	kind        Kind
	left, limit int64
}

func (l *limited) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return 0, bad("the %s file decompresses to more than %d bytes, the limit set by limits.maxFileBytes (the limit counts decompressed bytes)", l.kind, l.limit)
	}
	switch {
	case err == nil, err == io.EOF:
		return n, err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return n, bad("the %s file is truncated: it ends before its compressed data does (was the upload cut short?)", l.kind)
	}
	return n, bad("the %s file is damaged after %d decompressed bytes: %v", l.kind, l.limit-l.left, err)
}
