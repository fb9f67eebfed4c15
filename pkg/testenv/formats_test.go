package testenv

import (
	"bytes"
	"testing"

	"github.com/xuri/excelize/v2"
)

// TestWorkbookPutsRecordsOnTheNamedSheet reads the workbook back with
// excelize: the first sheet is not the data, the named one holds recs as
// text (a leading zero and an empty cell survive).
func TestWorkbookPutsRecordsOnTheNamedSheet(t *testing.T) {
	recs := [][]string{{"id", "note"}, {"007", ""}, {"8", "a, \"b\""}}
	f, err := excelize.OpenReader(bytes.NewReader(Workbook(t, "Orders", recs)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.GetSheetList(); len(got) != 2 || got[0] != "Sheet1" || got[1] != "Orders" {
		t.Fatalf("sheets %q, want [Sheet1 Orders]", got)
	}
	rows, err := f.GetRows("Orders")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		for j, want := range r {
			got := ""
			if j < len(rows[i]) {
				got = rows[i][j]
			}
			if got != want {
				t.Fatalf("row %d col %d: %q, want %q", i, j, got, want)
			}
		}
	}
}

func TestJSONLRecordsKeepsHeaderOrder(t *testing.T) {
	got := JSONLRecords(t, []byte("{\"b\":\"1\",\"a\":\"x\"}\n{\"b\":\"\",\"a\":\"y\"}\n"), []string{"b", "a"})
	want := [][]string{{"b", "a"}, {"1", "x"}, {"", "y"}}
	if len(got) != len(want) {
		t.Fatalf("%q, want %q", got, want)
	}
	for i := range want {
		if len(got[i]) != 2 || got[i][0] != want[i][0] || got[i][1] != want[i][1] {
			t.Fatalf("record %d: %q, want %q", i, got[i], want[i])
		}
	}
}

func TestParquetRowsNullIsEmpty(t *testing.T) {
	v := "1.5"
	got := ParquetRows([]string{"p", "q"}, [][]*string{{&v, nil}})
	if len(got) != 2 || got[1][0] != "1.5" || got[1][1] != "" {
		t.Fatalf("%q", got)
	}
}
