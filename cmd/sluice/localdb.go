package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/pkg/sqlite"
)

// openLocalDB opens the ledger and queues of a data directory for a command
// that only looks after what others did (status, dlq): it never creates
// the directory or the database. readOnly opens it without write access,
// so it also works on a read-only directory and beside a running pipeline.
// A directory with nothing in it gets a message that names it and says
// what to run.
func openLocalDB(data string, readOnly bool) (*sqlite.DB, error) {
	path := filepath.Join(data, "sluice.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		what := "no data directory " + data
		if st, err := os.Stat(data); err == nil && st.IsDir() {
			what = data + " holds no Sluice data (no sluice.db)"
		}
		return nil, fmt.Errorf("%s: nothing has run there yet.\n"+
			"Run `sluice run --data %s FILE.csv` (or `sluice serve --data %s`) first, or point --data (or SLUICE_DATA) at the data directory you used", what, data, data)
	}
	if readOnly {
		return sqlite.OpenReadOnly(path)
	}
	return sqlite.Open(path)
}
