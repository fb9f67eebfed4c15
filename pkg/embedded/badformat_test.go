package embedded_test

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/xuri/excelize/v2"
)

// generateFormat makes the bad-input corpus's binary cases (compressed
// files and workbooks) in the test, rather than committing opaque blobs.
// Each is made once: an encrypted workbook has a random salt, and the
// corpus test compares the archived input with the content again.
func generateFormat(t *testing.T, name string) ([]byte, bool) {
	t.Helper()
	genMu.Lock()
	defer genMu.Unlock()
	if b, ok := genCache[name]; ok {
		return b, true
	}
	b, ok := makeFormat(t, name)
	if ok {
		genCache[name] = b
	}
	return b, ok
}

var (
	genMu    sync.Mutex
	genCache = map[string][]byte{}
)

func makeFormat(t *testing.T, name string) ([]byte, bool) {
	const csvText = "uuid,Country,Item Type,Sales Channel,Order Priority,Order Date,Region,Ship Date\n" +
		"535113847,Azerbaijan,Snacks,Online,C,10/8/14,Middle East and North Africa,10/23/14\n" +
		"874708545,Panama,Cosmetics,Offline,L,2/22/15,Central America and the Caribbean,2/27/15\n"
	switch name {
	case "gzipTruncated": // a good gzip of three rows, cut in the middle
		b := gzipOf(t, []byte(csvText))
		return b[:len(b)/2], true
	case "gzipBomb": // a good header and row, then 64 MiB of zeros: 64 KiB compressed
		var raw bytes.Buffer
		raw.WriteString(csvText)
		raw.Write(make([]byte, 64<<20))
		return gzipOf(t, raw.Bytes()), true
	case "xlsxMergedFormulaDate":
		return xlsxMergedFormulaDate(t, ""), true
	case "xlsxPassword":
		return xlsxMergedFormulaDate(t, "secret"), true
	case "headerEmptyName": // an unnamed column between two named ones
		return []byte("uuid,Country,,Item Type,Sales Channel,Order Priority,Order Date,Region,Ship Date\n" +
			"535113847,Azerbaijan,x,Snacks,Online,C,10/8/14,Middle East and North Africa,10/23/14\n"), true
	case "headerReferenceName": // an input column named like an appended reference column
		return []byte("uuid,Country,Item Type,Sales Channel,Order Priority,Order Date,Region,Ship Date,unitsSold\n" +
			"535113847,Azerbaijan,Snacks,Online,C,10/8/14,Middle East and North Africa,10/23/14,1\n"), true
	}
	return nil, false
}

func gzipOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// xlsxMergedFormulaDate is a workbook as people send them: a formula
// (with the value Excel cached for it), dates in Excel's built-in short
// date format, and a merged Country cell over rows 3 and 4. With password
// set it is saved encrypted, as Excel's "Encrypt with password" does.
func xlsxMergedFormulaDate(t *testing.T, password string) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	const sh = "Sheet1"
	date := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	rows := [][]any{
		{"uuid", "Country", "Item Type", "Sales Channel", "Order Priority", "Order Date", "Region", "Ship Date"},
		{"535113847", "Azerbaijan", "Snacks", "Online", "C", date(2014, 10, 8), "Middle East and North Africa", date(2014, 10, 23)},
		{"874708545", "Panama", "Cosmetics", "Offline", "L", date(2015, 2, 22), "Central America and the Caribbean", date(2015, 2, 27)},
		{"854349935", "", "Fruits", "Offline", "M", date(2016, 5, 12), "Sub-Saharan Africa", date(2016, 5, 31)},
	}
	for i, r := range rows {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		if err := f.SetSheetRow(sh, cell, &r); err != nil {
			t.Fatal(err)
		}
	}
	style, err := f.NewStyle(&excelize.Style{NumFmt: 14}) // Excel's locale short date
	if err != nil {
		t.Fatal(err)
	}
	for _, col := range []string{"F", "H"} {
		if err := f.SetCellStyle(sh, col+"2", col+"4", style); err != nil {
			t.Fatal(err)
		}
	}
	// The value first, then the formula: the value stays as the cache,
	// as Excel saves it. (A number: excelize drops a string's cache.)
	if err := f.SetCellInt(sh, "E2", 4); err != nil {
		t.Fatal(err)
	}
	if err := f.SetCellFormula(sh, "E2", `LEN("Crit")`); err != nil {
		t.Fatal(err)
	}
	if err := f.MergeCell(sh, "B3", "B4"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := f.Write(&buf, excelize.Options{Password: password}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
