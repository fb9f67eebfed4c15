package pipeline

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/csvscan"
	"github.com/sluicehq/sluice/pkg/format"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// encode streams what write produces into one object at key. The blob
// store reads a pipe, so on S3 a Parquet file is one multipart upload
// whose footer is written after its row groups, never held whole.
func (m Merger) encode(ctx context.Context, key string, write func(io.Writer) error) (FileDigest, error) {
	pr, pw := io.Pipe()
	cw := &hashWriter{w: pw, h: sha256.New()}
	done := make(chan error, 1)
	go func() {
		err := write(cw)
		pw.CloseWithError(err)
		done <- err
	}()
	info, err := m.Blobs.Put(ctx, key, pr)
	pr.CloseWithError(errors.New("merge: the upload stopped reading")) // unblocks the writer if Put gave up
	werr := <-done
	var bad *format.BadInput
	if errors.As(werr, &bad) {
		return FileDigest{}, sluice.Permanentf("writing %s: %s", key, bad.Reason)
	}
	if werr != nil {
		return FileDigest{}, fmt.Errorf("writing %s: %w", key, werr)
	}
	if err != nil {
		return FileDigest{}, fmt.Errorf("merging into %s: %w", key, err)
	}
	if info.Size != cw.size {
		return FileDigest{}, fmt.Errorf("merging into %s: stored %d bytes, wrote %d", key, info.Size, cw.size)
	}
	return FileDigest{Key: key, Bytes: cw.size, SHA256: hex.EncodeToString(cw.h.Sum(nil))}, nil
}

// writeOutput writes the header and parts 0..n-1 in the configured format.
// Compressed CSV is the plain CSV bytes compressed; JSON Lines and Parquet
// decode each part's records (the worker writes them with the delimiter).
func (m Merger) writeOutput(ctx context.Context, w io.Writer, header []string, n int, part func(int) string) error {
	cfg := m.Config
	if cfg.OutputFormat() == config.FormatCSV {
		zw, err := format.Compress(w, cfg.OutputCompression())
		if err != nil {
			return err
		}
		pr := &partsReader{ctx: ctx, blobs: m.Blobs, header: csvscan.AppendStrings(nil, header, cfg.Delim()), n: n, part: part, hash: sha256.New()}
		defer pr.close()
		if _, err := io.Copy(zw, pr); err != nil {
			return err
		}
		return zw.Close()
	}
	rw, err := format.NewRowWriter(w, cfg, header)
	if err != nil {
		return err
	}
	for i := range n {
		if err := m.writePart(ctx, rw, part(i)); err != nil {
			return fmt.Errorf("part %d: %w", i, err)
		}
		if err := rw.EndPart(); err != nil {
			return err
		}
	}
	return rw.Close()
}

// writePart feeds one output part's records to rw.
func (m Merger) writePart(ctx context.Context, rw format.RowWriter, key string) error {
	r, err := m.Blobs.Get(ctx, key)
	if err != nil {
		return err
	}
	defer r.Close()
	delim := m.Config.Delim()
	// Output rows are input rows plus the appended reference values.
	sc := csvscan.NewScanner(bufio.NewReaderSize(r, 64<<10), delim, m.Config.Limits.MaxLineBytes+1<<20)
	var fields [][]byte
	var scratch []byte
	for {
		rec, err := sc.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		fields, scratch, err = csvscan.Split(csvscan.TrimEOL(rec), delim, fields, scratch)
		if err != nil {
			return err
		}
		if err := rw.Write(fields); err != nil {
			return err
		}
	}
}

type hashWriter struct {
	w    io.Writer
	h    hash.Hash
	size int64
}

func (c *hashWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.h.Write(b[:n])
	c.size += int64(n)
	return n, err
}
