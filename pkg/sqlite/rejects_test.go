package sqlite_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

// oldLayoutDB makes a database as a Sluice from before the reject blocks
// left it: its batch's rejected rows in the rejects table, one row each,
// and no reject_blocks table. It returns the path.
func oldLayoutDB(t *testing.T, id string, lines []int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.db")
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Ledger().CreateBatch(t.Context(), sluice.Batch{ID: id, Key: "input/x.csv", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`DROP TABLE reject_blocks`); err != nil {
		t.Fatal(err)
	}
	for _, line := range lines {
		if _, err := raw.Exec(`INSERT INTO rejects (batch_id, line, chunk, col, rule, message, raw) VALUES (?, ?, 0, 'uuid', 'pattern', 'old', ?)`,
			id, line, fmt.Sprint("row ", line)); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func pageAll(t *testing.T, l *sqlite.Ledger, id string, limit int) []sluice.RowError {
	t.Helper()
	var out []sluice.RowError
	after := int64(0)
	for {
		page, err := l.Rejects(t.Context(), id, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Line
	}
}

// TestRejectsOfAnOlderDatabase: the rows a Sluice from before the blocks
// stored are still read, by status's read-only open of the untouched file
// and after a run has opened it and added blocks; a line in both is read
// once, as the block (the newer write) has it.
func TestRejectsOfAnOlderDatabase(t *testing.T) {
	path := oldLayoutDB(t, "old", []int64{2, 4, 6, 8, 10})

	ro, err := sqlite.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	got := pageAll(t, ro.Ledger(), "old", 2)
	ro.Close()
	if len(got) != 5 || got[0].Line != 2 || got[4].Line != 10 || got[0].Message != "old" || got[0].BatchID != "old" {
		t.Fatalf("read-only open of the old layout read %+v, want its 5 rows", got)
	}

	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := db.Ledger()
	// A resumed batch's redelivered chunk: lines 6 and 8 again, and new ones.
	add := []sluice.RowError{{Line: 6, Rule: "pattern", Message: "new"}, {Line: 7, Rule: "pattern", Message: "new"}, {Line: 8, Rule: "pattern", Message: "new"}, {Line: 12, Rule: "pattern", Message: "new"}}
	if err := l.AddRejects(t.Context(), "old", add); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 2, 3, 100} {
		got := pageAll(t, l, "old", limit)
		var desc []string
		for _, r := range got {
			desc = append(desc, fmt.Sprint(r.Line, r.Message))
		}
		if want := "[2old 4old 6new 7new 8new 10old 12new]"; fmt.Sprint(desc) != want {
			t.Fatalf("pages of %d: %v, want %s", limit, desc, want)
		}
	}
}

// TestRejectsBlockBoundaries pages through a batch whose rows span several
// blocks and several calls, from every starting line, and checks each page.
func TestRejectsBlockBoundaries(t *testing.T) {
	l := open(t).Ledger()
	if _, _, err := l.CreateBatch(t.Context(), sluice.Batch{ID: "b", Key: "input/b.csv", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var lines []int64
	for c := range 3 { // three chunks of 1,500 rows: blocks of 1,000 and 500
		var rows []sluice.RowError
		for i := range 1500 {
			line := int64(c*10000 + 3*i + 2)
			rows = append(rows, sluice.RowError{Chunk: c, Line: line, Rule: "r", Raw: fmt.Sprint(line)})
			lines = append(lines, line)
		}
		if err := l.AddRejects(t.Context(), "b", rows); err != nil {
			t.Fatal(err)
		}
	}
	for _, after := range []int64{0, 1, 2, 2998, 2999, 3001, 4499, 4500, 10001, 29999, 34499, 34500} {
		page, err := l.Rejects(t.Context(), "b", after, 1100)
		if err != nil {
			t.Fatal(err)
		}
		var want []int64
		for _, x := range lines {
			if x > after && len(want) < 1100 {
				want = append(want, x)
			}
		}
		if len(page) != len(want) {
			t.Fatalf("after %d: %d rows, want %d", after, len(page), len(want))
		}
		for i, r := range page {
			if r.Line != want[i] || r.Raw != fmt.Sprint(want[i]) || r.Chunk != int(want[i]/10000) {
				t.Fatalf("after %d: row %d = %+v, want line %d", after, i, r, want[i])
			}
		}
	}
}
