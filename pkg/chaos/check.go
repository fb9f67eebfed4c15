package chaos

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// clean is the embedded run's result: what every chaos run must equal.
type clean struct {
	batch     sluice.Batch
	outSHA    string
	errSHA    string
	errLines  int
	errorsKey string
}

// cleanRun runs the file through the embedded engine, as `sluice run`
// does, with the same chunk size.
func cleanRun(ctx context.Context, dir string, chunkRows int, orders, fin string) (clean, error) {
	cfg := config.Default()
	cfg.ChunkRows = chunkRows
	eng, err := embedded.Open(dir, cfg, nil)
	if err != nil {
		return clean{}, err
	}
	defer eng.Close()
	if _, _, err := eng.LoadReference(ctx, fin, nil); err != nil {
		return clean{}, err
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Minute)
	_, b, err := eng.Process(wctx, orders, nil, nil)
	wcancel()
	if err != nil {
		return clean{}, err
	}
	if b.State != sluice.StateCompleted {
		return clean{}, fmt.Errorf("batch %s: %s (%s)", b.ID, b.State, b.Reason)
	}
	c := clean{batch: b}
	f, err := os.Open(eng.Path(b.OutputKey))
	if err != nil {
		return clean{}, err
	}
	c.outSHA, err = digest(f)
	f.Close()
	if err != nil {
		return clean{}, err
	}
	f, err = os.Open(eng.Path(b.ErrorsKey))
	if err != nil {
		return clean{}, err
	}
	defer f.Close()
	var lines []int64
	c.errSHA, lines, err = digestReport(f)
	c.errLines = len(lines)
	return c, err
}

func digest(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// digestReport hashes an error report and returns its line numbers, in
// report order.
func digestReport(r io.Reader) (string, []int64, error) {
	h := sha256.New()
	cr := csv.NewReader(bufio.NewReaderSize(io.TeeReader(r, h), 1<<20))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var lines []int64
	for first := true; ; first = false {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", nil, fmt.Errorf("error report: %w", err)
		}
		if first {
			continue // the header
		}
		n, err := strconv.ParseInt(rec[0], 10, 64)
		if err != nil {
			return "", nil, fmt.Errorf("error report: line %q: %w", rec[0], err)
		}
		lines = append(lines, n)
	}
	io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), lines, nil
}

func duplicates(lines []int64) int {
	seen := make(map[int64]bool, len(lines))
	d := 0
	for _, l := range lines {
		if seen[l] {
			d++
		}
		seen[l] = true
	}
	return d
}

// check compares the batch's outputs, ledger and emails with the clean run.
//
// sesGap: a notifier was killed after the merge on AWS, so two emails are
// the documented SES gap, reported but not a failure; three are.
func check(ctx context.Context, be backend, b sluice.Batch, c clean, rep *Report, sesGap bool) error {
	if b.State != sluice.StateCompleted {
		return nil
	}
	r, err := be.open(ctx, b.OutputKey)
	if err != nil {
		return fmt.Errorf("chaos: reading the output: %w", err)
	}
	rep.OutputSHA, err = digest(r)
	r.Close()
	if err != nil {
		return err
	}
	rep.OutputEqual = rep.OutputSHA == c.outSHA
	if !rep.OutputEqual {
		rep.failf("the output differs from the clean run's (sha256 %s, want %s)", rep.OutputSHA[:12], c.outSHA[:12])
	}
	r, err = be.open(ctx, b.ErrorsKey)
	if err != nil {
		return fmt.Errorf("chaos: reading the error report: %w", err)
	}
	var lines []int64
	rep.ErrorsSHA, lines, err = digestReport(r)
	r.Close()
	if err != nil {
		return err
	}
	rep.ErrorsEqual = rep.ErrorsSHA == c.errSHA
	if !rep.ErrorsEqual {
		rep.failf("the error report differs from the clean run's (sha256 %s, want %s)", rep.ErrorsSHA[:12], c.errSHA[:12])
	}
	rep.ReportRejected = len(lines)
	rep.DuplicateLines = duplicates(lines)

	// The ledger's rejected rows, page by page.
	var ledgerLines []int64
	after := int64(0)
	for {
		page, err := be.ledger().Rejects(ctx, b.ID, after, 1000)
		if err != nil {
			return fmt.Errorf("chaos: reading the ledger's rejected rows: %w", err)
		}
		for _, e := range page {
			ledgerLines = append(ledgerLines, e.Line)
			after = max(after, e.Line)
		}
		if len(page) < 1000 {
			break
		}
	}
	rep.LedgerRejected = len(ledgerLines)
	rep.DuplicateLines += duplicates(ledgerLines)
	if rep.DuplicateLines > 0 {
		rep.failf("%d rejected rows listed more than once", rep.DuplicateLines)
	}
	if rep.ReportRejected != c.errLines || rep.LedgerRejected != c.batch.RowsRejected || rep.Rejected != c.batch.RowsRejected {
		rep.failf("rejected rows: %d in the report, %d in the ledger, %d in the batch; the clean run has %d", rep.ReportRejected, rep.LedgerRejected, rep.Rejected, c.batch.RowsRejected)
	}
	if b.RowsOut != c.batch.RowsOut || b.TotalChunks != c.batch.TotalChunks {
		rep.failf("batch counts %d rows out in %d chunks; the clean run %d in %d", b.RowsOut, b.TotalChunks, c.batch.RowsOut, c.batch.TotalChunks)
	}
	rep.Emails, err = be.emails(ctx, b)
	if err != nil {
		return fmt.Errorf("chaos: counting emails: %w", err)
	}
	switch {
	case rep.Emails == 2 && sesGap:
		rep.SESGap = true // the documented gap, not a failure; shown in the report
	case rep.Emails >= 0 && rep.Emails != 1:
		rep.failf("%d emails, want exactly 1", rep.Emails)
	}
	return nil
}
