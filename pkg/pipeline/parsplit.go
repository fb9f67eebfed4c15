package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sync"

	"github.com/sluicehq/sluice/pkg/csvscan"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// ParallelSplitBytes is the input size from which the split finds its chunk
// cut points with csvscan.FindCuts, on every core, when the blob store hands
// out a random-access reader (a local file). Below it the one sequential scan
// is already quick, and the goroutines would cost more than they save.
// Tests lower it to run the parallel path on small corpora.
var ParallelSplitBytes int64 = 64 << 20

// cutInput picks the sequential or the parallel cut for the input r. The
// size is the open file's own, not the blob store's earlier Stat, so that no
// byte of what is read can be left out.
func (s Splitter) cutInput(ctx context.Context, b sluice.Batch, r io.Reader) (splitResult, error) {
	f, ok := r.(interface {
		io.ReaderAt
		Stat() (fs.FileInfo, error)
	})
	if ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() >= ParallelSplitBytes {
			return s.cutParallel(ctx, b, f, st.Size())
		}
	}
	return s.cut(&chunker{s: s, ctx: ctx, b: b}, r)
}

// cutRanges is cutInput for ranges mode: the chunks are byte ranges of the
// archive, whose offsets, lengths and first lines FindCuts finds on every
// core when the archive is a regular file of ParallelSplitBytes or more.
func (s Splitter) cutRanges(ctx context.Context, b sluice.Batch, etag string, r io.Reader) (splitResult, error) {
	seq := func(r io.Reader) (splitResult, error) {
		return s.cut(&chunker{s: s, ctx: ctx, b: b, input: ArchiveKey(b), inputETag: etag}, r)
	}
	f, ok := r.(interface {
		io.ReaderAt
		Stat() (fs.FileInfo, error)
	})
	if !ok {
		return seq(r)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() < ParallelSplitBytes {
		return seq(r)
	}
	size := st.Size()
	whole := func() io.Reader { return io.NewSectionReader(f, 0, size) }
	if err := sniff(bufio.NewReaderSize(whole(), 64<<10)); err != nil {
		return splitResult{}, err
	}
	// Each chunk's message goes out as soon as its cut is final, as cut
	// sends them, so workers start while the boundaries are still found.
	var res splitResult
	var stopped error // the header's or a send's error, not FindCuts'
	o := s.cutOptions()
	o.OnCut = func(i int, c csvscan.Cut) error {
		if i == 0 {
			_, stopped = s.header(ctx, b, s.rangeScanner(f, c, nil))
			return stopped
		}
		msg := sluice.ChunkReady{Version: sluice.MessageVersion, BatchID: b.ID, Chunk: i - 1,
			Input: ArchiveKey(b), InputETag: etag, Offset: c.Offset, Length: c.End - c.Offset, FirstLine: c.FirstLine, Rows: c.Rows}
		if stopped = s.sendRange(ctx, msg); stopped != nil {
			return stopped
		}
		res.chunks++
		res.rows += c.Rows
		return nil
	}
	cuts, err := csvscan.FindCuts(f, size, o)
	if stopped != nil {
		return res, stopped
	}
	if err != nil {
		// Empty, a record too long, a quote never closed: cut's own
		// reason, from cut itself, which sends again the same messages
		// for the chunks before the bad record.
		return seq(whole())
	}
	batchLog(s.log(), b.ID).Info("record boundaries found in parallel", "bytes", size, "chunks", len(cuts.Chunks), "ranges", true)
	return res, nil
}

// sendRange sends one range chunk's message, with the fault points cut's
// flush passes (no chunk is stored, but a crash test names the same steps).
func (s Splitter) sendRange(ctx context.Context, msg sluice.ChunkReady) error {
	if err := s.fault(PointSplitAfterChunkPut); err != nil {
		return err
	}
	if err := s.Chunks.Send(ctx, sluice.Encode(msg)); err != nil {
		return err
	}
	return s.fault(PointSplitAfterChunkSend)
}

func (s Splitter) cutOptions() csvscan.CutOptions {
	return csvscan.CutOptions{Delim: s.Config.Delim(), MaxRecord: s.Config.Limits.MaxLineBytes, ChunkRows: s.Config.ChunkRows}
}

// cutParallel is cut with the record boundaries found, and the chunks
// written, in parallel. The chunks, their messages and the ledger's header
// are byte for byte what cut makes. Any file FindCuts refuses (empty, a
// record too long, a quote never closed) goes through cut, so a bad file
// gets exactly cut's reason. A crash may leave a few chunks stored ahead of
// their messages; the redelivered split stores them again under the same
// keys, as it does every chunk.
func (s Splitter) cutParallel(ctx context.Context, b sluice.Batch, ra io.ReaderAt, size int64) (splitResult, error) {
	whole := func() io.Reader { return io.NewSectionReader(ra, 0, size) }
	if err := sniff(bufio.NewReaderSize(whole(), 64<<10)); err != nil {
		return splitResult{}, err
	}
	cuts, err := csvscan.FindCuts(ra, size, s.cutOptions())
	if err != nil {
		return s.cut(&chunker{s: s, ctx: ctx, b: b}, whole())
	}
	batchLog(s.log(), b.ID).InfoContext(ctx, "record boundaries found in parallel", "bytes", size, "chunks", len(cuts.Chunks))
	headerLine, err := s.header(ctx, b, s.rangeScanner(ra, cuts.Header, nil))
	if err != nil {
		return splitResult{}, err
	}
	return s.writeChunks(ctx, b, ra, headerLine, cuts.Chunks)
}

// writeChunks writes the chunks on every core, a few at a time (which bounds
// the memory), while this goroutine sends their messages in chunk order, each
// after its chunk is stored, as cut does.
func (s Splitter) writeChunks(ctx context.Context, b sluice.Batch, ra io.ReaderAt, headerLine []byte, chunks []csvscan.Cut) (splitResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	stored := make([]chan error, len(chunks))
	for k := range stored {
		stored[k] = make(chan error, 1)
	}
	slots := make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k, c := range chunks {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				stored[k] <- s.putChunk(ctx, b, k, ra, headerLine, c)
			}()
		}
	}()
	var res splitResult
	for k, c := range chunks {
		var err error
		select {
		case err = <-stored[k]:
		case <-ctx.Done():
			err = ctx.Err()
		}
		<-slots
		if err == nil {
			err = s.fault(PointSplitAfterChunkPut)
		}
		if err == nil {
			err = s.sendChunk(ctx, b, k, c.FirstLine, c.Rows)
		}
		if err != nil {
			return res, err
		}
		res.chunks++
		res.rows += c.Rows
	}
	return res, nil
}

// putChunk stores chunk k: the header line, then the cut's records, blank
// lines dropped and each ending in a line break, as cut writes them.
func (s Splitter) putChunk(ctx context.Context, b sluice.Batch, k int, ra io.ReaderAt, headerLine []byte, c csvscan.Cut) error {
	body := make([]byte, len(headerLine)+int(c.End-c.Offset), len(headerLine)+int(c.End-c.Offset)+1)
	copy(body, headerLine)
	data := body[len(headerLine):]
	if n, err := ra.ReadAt(data, c.Offset); n < len(data) {
		return fmt.Errorf("reading bytes %d-%d of the input: %w", c.Offset, c.End, err)
	}
	if c.Blanks > 0 {
		recs, err := s.records(append([]byte(nil), headerLine...), s.rangeScanner(ra, c, data))
		if err != nil {
			return err
		}
		body = recs
	} else if body[len(body)-1] != '\n' {
		body = append(body, '\n') // the file's last line lacked its line break
	}
	_, err := s.Blobs.Put(ctx, ChunkKey(b, k), bytes.NewReader(body))
	return err
}

// rangeScanner scans one cut's records. A blank line goes first: the Scanner
// skips it, and it keeps the Scanner from taking bytes that merely look like
// a byte-order mark at the cut's start for one (only the file's first bytes
// can be one).
func (s Splitter) rangeScanner(ra io.ReaderAt, c csvscan.Cut, data []byte) *csvscan.Scanner {
	var r io.Reader = io.NewSectionReader(ra, c.Offset, c.End-c.Offset)
	if data != nil {
		r = bytes.NewReader(data)
	}
	r = io.MultiReader(bytes.NewReader([]byte{'\n'}), r)
	return csvscan.NewScanner(r, s.Config.Delim(), s.Config.Limits.MaxLineBytes)
}

// records appends the scanned records, blank lines dropped, each ending in
// a line break, as cut writes them.
func (s Splitter) records(dst []byte, sc *csvscan.Scanner) ([]byte, error) {
	for {
		rec, err := sc.Next()
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return nil, err // FindCuts read these records whole: not expected
		}
		dst = append(dst, rec...)
		if rec[len(rec)-1] != '\n' {
			dst = append(dst, '\n')
		}
	}
}

// sendChunk sends chunk n's message, as cut's flush does.
func (s Splitter) sendChunk(ctx context.Context, b sluice.Batch, n int, firstLine int64, rows int) error {
	msg := sluice.ChunkReady{Version: sluice.MessageVersion, BatchID: b.ID, Chunk: n, Key: ChunkKey(b, n), FirstLine: firstLine, Rows: rows}
	if err := s.Chunks.Send(ctx, sluice.Encode(msg)); err != nil {
		return err
	}
	return s.fault(PointSplitAfterChunkSend)
}
