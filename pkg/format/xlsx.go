package format

import (
	"bufio"
	"bytes"
	"io"
	"slices"
	"strings"

	"github.com/xuri/excelize/v2"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/csvscan"
)

// cfbMagic starts an OLE compound file: what Excel writes for a workbook
// with a password to open (the ZIP is encrypted inside it), and old .xls.
var cfbMagic = []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}

// IsEncryptedOrXLS reports whether head starts an OLE compound file.
func IsEncryptedOrXLS(head []byte) bool { return bytes.HasPrefix(head, cfbMagic) }

// excelErrors are the values Excel shows for a formula that failed.
var excelErrors = []string{"#DIV/0!", "#N/A", "#NAME?", "#NULL!", "#NUM!", "#REF!", "#VALUE!", "#SPILL!", "#CALC!"}

// openXLSX reads a workbook's sheet and writes its rows as CSV text with
// the configured delimiter, one record per sheet row, so a rejected row's
// line number is its row number in the sheet. The ZIP itself is held in
// memory (excelize needs random access to it; its size is bounded by
// limits.maxFileBytes), but the sheet's XML, which is what grows with the
// rows, is unzipped to tmpDir once over 16 MiB and streamed row by row.
func openXLSX(r io.Reader, cfg *config.Pipeline, limit int64, tmpDir string) (*Opened, error) {
	buf, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(buf)) > limit {
		return nil, bad("the workbook is over %d bytes, the limit set by limits.maxFileBytes", limit)
	}
	datePattern := cfg.Input.DateFormat
	if datePattern == "" {
		datePattern = "yyyy-mm-dd"
	}
	f, err := excelize.OpenReader(bytes.NewReader(buf), excelize.Options{
		UnzipSizeLimit: limit, UnzipXMLSizeLimit: min(limit, 16<<20), TmpDir: tmpDir,
		// Excel's built-in date format (14) follows the reader's locale:
		// pinning it makes dates ISO whatever machine runs the split.
		ShortDatePattern: datePattern,
	})
	if err != nil {
		return nil, bad("the file is a ZIP archive but not an Excel .xlsx workbook Sluice can read: %v", err)
	}
	sheet := cfg.Input.Sheet
	if sheet == "" {
		sheet = f.GetSheetName(0)
	}
	rows, err := f.Rows(sheet)
	if err != nil {
		f.Close()
		return nil, bad("the workbook has no sheet %q (input.sheet); its sheets are %s", sheet, strings.Join(f.GetSheetList(), ", "))
	}
	pr, pw := io.Pipe()
	go func() {
		err := writeRows(pw, rows, sheet, cfg.Delim())
		rows.Close()
		pw.CloseWithError(err)
	}()
	return &Opened{Reader: pr, Kind: KindXLSX, close: func() error {
		pr.Close() // stops the writer if the split gave up early
		return f.Close()
	}}, nil
}

// writeRows writes each sheet row as one CSV record.
func writeRows(w io.Writer, rows *excelize.Rows, sheet string, delim byte) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var rec []byte
	width := 0
	for row := 1; rows.Next(); row++ {
		cols, err := rows.Columns()
		if err != nil {
			return bad("sheet %q row %d cannot be read: %v", sheet, row, err)
		}
		for i, v := range cols {
			if slices.Contains(excelErrors, v) {
				cell, _ := excelize.CoordinatesToCellName(i+1, row)
				return bad("sheet %q cell %s shows the Excel error %s: fix the formula, or paste its values, and send the workbook again", sheet, cell, v)
			}
		}
		if row == 1 {
			cols = fit(cols, 0)
			width = len(cols)
		} else {
			cols = fit(cols, width)
		}
		rec = csvscan.AppendStrings(rec[:0], cols, delim)
		if _, err := bw.Write(rec); err != nil {
			return err
		}
	}
	if err := rows.Error(); err != nil {
		return bad("sheet %q cannot be read: %v", sheet, err)
	}
	return bw.Flush()
}

// fit gives a row the header's width: excelize leaves out empty cells at
// a row's end, and formatting past the data makes rows look wider. Only
// empty cells are dropped; a row with values past the header keeps them,
// and the worker rejects it for its column count. An all-empty row
// becomes a blank line, which the scanner counts but skips.
func fit(cols []string, width int) []string {
	for len(cols) > width && cols[len(cols)-1] == "" {
		cols = cols[:len(cols)-1]
	}
	if allEmpty(cols) {
		return nil
	}
	for len(cols) < width {
		cols = append(cols, "")
	}
	return cols
}

func allEmpty(cols []string) bool {
	for _, c := range cols {
		if c != "" {
			return false
		}
	}
	return true
}
