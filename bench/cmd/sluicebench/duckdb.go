package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// duckRunner runs bench/duckdb/job.mjs under node; npm ci --prefix
// bench/duckdb installs @duckdb/node-api beside it.
type duckRunner struct {
	node    string
	job     string
	version string // DuckDB's, from the last job output
}

func newDuckRunner(node, dir string) (*duckRunner, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if node, err = exec.LookPath(node); err != nil {
		return nil, fmt.Errorf("DuckDB side needs node (or pass -skip-duckdb): %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api", "package.json")); err != nil {
		return nil, fmt.Errorf("@duckdb/node-api is not installed: run npm ci --prefix %s (or pass -skip-duckdb)", dir)
	}
	return &duckRunner{node: node, job: filepath.Join(dir, "job.mjs")}, nil
}

// duckOutput is what job.mjs prints.
type duckOutput struct {
	Rows    int     `json:"rows"`    // load
	RowsOut int     `json:"rowsOut"` // run
	Seconds float64 `json:"seconds"` // inside the script, after node has started
	DuckDB  string  `json:"duckdb"`
}

func (d *duckRunner) exec(ctx context.Context, args ...string) (measured, duckOutput, error) {
	var out duckOutput
	m, err := measure(ctx, nil, d.node, append([]string{d.job}, args...)...)
	if err != nil {
		return m, out, err
	}
	if err := json.Unmarshal(m.Stdout, &out); err != nil {
		return m, out, fmt.Errorf("job.mjs %s printed %q: %w", args[0], tail(m.Stdout, 500), err)
	}
	if out.DuckDB == "" {
		return m, out, errors.New("job.mjs printed no DuckDB version")
	}
	d.version = out.DuckDB
	return m, out, nil
}

// load fills db's reference table from financials, unless a stamp says it
// already holds this dataset's reference.
func (d *duckRunner) load(ctx context.Context, db, financials, stamp string) (loaded bool, err error) {
	stampPath := db + ".stamp"
	if old, err := os.ReadFile(stampPath); err == nil && string(old) == stamp {
		if _, err := os.Stat(db); err == nil {
			return false, nil
		}
	}
	for _, p := range []string{db, db + ".wal", stampPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
		return false, err
	}
	if _, _, err := d.exec(ctx, "load", db, financials); err != nil {
		return false, err
	}
	return true, os.WriteFile(stampPath, []byte(stamp), 0o644)
}

// duckRun is one timed DuckDB job.
type duckRun struct {
	Mode        string  `json:"mode"`
	Wall        float64 `json:"wallSeconds"`
	ScriptWall  float64 `json:"scriptSeconds"` // the part after node's start-up
	PeakRSSMiB  float64 `json:"peakRssMiB"`
	RowsOut     int     `json:"rowsOut"`
	Output      string  `json:"output"`
	LoadAverage string  `json:"loadAverage"`
}

// run times job.mjs in mode "ordered" (the job as Sluice does it: input
// order kept) or "unordered" (the same rows in whatever order DuckDB's hash
// join gives, which is cheaper).
func (d *duckRunner) run(ctx context.Context, db, orders, output, mode string) (duckRun, error) {
	if err := os.Remove(output); err != nil && !errors.Is(err, os.ErrNotExist) {
		return duckRun{}, err
	}
	m, out, err := d.exec(ctx, "run", db, orders, output, mode)
	if err != nil {
		return duckRun{}, err
	}
	return duckRun{
		Mode:        mode,
		Wall:        m.Wall.Seconds(),
		ScriptWall:  out.Seconds,
		PeakRSSMiB:  float64(m.MaxRSS) / mib,
		RowsOut:     out.RowsOut,
		Output:      output,
		LoadAverage: loadAvg(),
	}, nil
}
