package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"

	"github.com/sluicehq/sluice/pkg/oracle"
)

type bench struct {
	o       options
	duck    *duckRunner
	log     *logger
	machine machine
	results []result
}

// dataset generates (or reuses) one dataset, times both tools on it, and
// checks the outputs.
func (b *bench) dataset(ctx context.Context, rows int) (result, error) {
	name := datasetName(rows)
	p := genParams{Rows: rows, Seed: b.o.seed, BadRate: b.o.badRate}
	if b.o.refRowsCap > 0 && rows > b.o.refRowsCap {
		p.RefRows = b.o.refRowsCap
	}
	dir := filepath.Join(b.o.out, name)
	ds, err := b.prepare(ctx, name, filepath.Join(dir, "input"), p)
	if err != nil {
		return result{}, err
	}
	res := result{Dataset: name, Rows: rows, RefRows: ds.Stamp.Stats.RefRows, InputMB: float64(ds.Stamp.OrdersBytes) / 1e6}
	reps := b.o.reps
	if rows > b.o.largeRows {
		reps = b.o.largeReps
	}
	data := filepath.Join(dir, "sluice-data")
	if err := b.sluiceRuns(ctx, ds, data, name, reps, &res); err != nil {
		return res, err
	}
	if rows <= b.o.largeRows {
		if err := b.formatRuns(ctx, ds, dir, name, &res); err != nil {
			return res, err
		}
	}
	duckOut, err := b.duckRuns(ctx, ds, dir, name, rows, reps, &res)
	if err != nil {
		return res, err
	}
	if b.o.profile {
		if err := b.profileRun(ctx, ds, filepath.Join(dir, "sluice-profile"), filepath.Join(dir, "cpu.prof")); err != nil {
			return res, err
		}
	}
	oracleOut, err := b.checks(ctx, ds, dir, name, rows, duckOut, &res)
	if err != nil {
		return res, err
	}
	if slices.ContainsFunc(res.Checks, func(c check) bool { return c.Status == checkFail }) {
		b.log.printf("%s: kept %s for inspection", name, data)
	} else if !b.o.keep {
		for _, p := range []string{data, duckOut, oracleOut} {
			if p != "" {
				if err := os.RemoveAll(p); err != nil {
					return res, err
				}
			}
		}
	}
	return res, nil
}

// sluiceRuns times `sluice run` reps times on the dataset.
func (b *bench) sluiceRuns(ctx context.Context, ds *dataset, data, name string, reps int, res *result) error {
	for i := range reps {
		b.log.printf("%s: sluice run %d/%d (reference load untimed, then run --json)", name, i+1, reps)
		r, err := b.runSluice(ctx, ds, data, nil)
		if err != nil {
			return err
		}
		b.log.printf("%s: sluice run %d/%d: %.2fs, peak RSS %.0f MiB, %d rows out (split %.2fs, process %.2fs, merge %.2fs)",
			name, i+1, reps, r.Wall, r.PeakRSSMiB, r.RowsOut, r.Stages.Split, r.Stages.Process, r.Stages.Merge)
		res.Sluice = append(res.Sluice, r)
	}
	return nil
}

// duckRuns times the DuckDB job, the plain unordered join (the headline)
// and, up to -ordered-max-rows, the ordered one, and returns the ordered
// output's path ("" without DuckDB or without the ordered run).
func (b *bench) duckRuns(ctx context.Context, ds *dataset, dir, name string, rows, reps int, res *result) (string, error) {
	if b.duck == nil {
		return "", nil
	}
	db := filepath.Join(dir, "duckdb", "reference.duckdb")
	b.log.printf("%s: duckdb: reference table (untimed, once per dataset)", name)
	loaded, err := b.duck.load(ctx, db, ds.Financials, ds.stampText)
	if err != nil {
		return "", err
	}
	if !loaded {
		b.log.printf("%s: duckdb: reusing %s", name, db)
	}
	duckOut := filepath.Join(dir, "duckdb", "orders.out.csv")
	modes := []string{"unordered"} // the plain join a user would write: the headline
	if rows <= b.o.orderedMax {
		modes = append(modes, "ordered")
	}
	if len(modes) == 1 {
		duckOut = "" // the ordered output is the one compared with the oracle
	}
	for _, mode := range modes {
		out := filepath.Join(dir, "duckdb", "orders.out.csv")
		if mode != "ordered" {
			out = filepath.Join(dir, "duckdb", "orders."+mode+".csv")
			defer os.Remove(out)
		}
		for i := range reps {
			b.log.printf("%s: duckdb %s run %d/%d", name, mode, i+1, reps)
			r, err := b.duck.run(ctx, db, ds.Orders, out, mode)
			if err != nil {
				return duckOut, err
			}
			b.log.printf("%s: duckdb %s run %d/%d: %.2fs (%.2fs after node start-up), peak RSS %.0f MiB, %d rows out",
				name, mode, i+1, reps, r.Wall, r.ScriptWall, r.PeakRSSMiB, r.RowsOut)
			if mode == "ordered" {
				res.DuckDB = append(res.DuckDB, r)
			} else {
				res.DuckDBUnordered = append(res.DuckDBUnordered, r)
			}
		}
	}
	return duckOut, nil
}

// checks holds the last Sluice run to the generator's counts and the
// oracle's output, and DuckDB to Sluice's row count; it returns the
// oracle's output path ("" when the oracle was not run).
func (b *bench) checks(ctx context.Context, ds *dataset, dir, name string, rows int, duckOut string, res *result) (string, error) {
	last := res.Sluice[len(res.Sluice)-1]
	res.Checks = append(res.Checks, countChecks(ds.Stamp.Stats, res.Sluice)...)
	var oracleOut string
	if rows <= b.o.oracleMax {
		want := filepath.Join(dir, "oracle.csv")
		b.log.printf("%s: oracle: computing the expected output in a child process (whole file in memory)", name)
		if err := b.runOracle(ctx, ds, want); err != nil {
			return "", err
		}
		oracleOut = want
		res.Checks = append(res.Checks, compareCheck("Sluice output = oracle, byte for byte", last.Output, want, checkFail))
		if duckOut != "" {
			res.Checks = append(res.Checks, compareCheck("DuckDB (ordered) output = oracle, byte for byte", duckOut, want, checkWarn))
		}
	} else {
		res.Checks = append(res.Checks, check{Name: "oracle", Status: checkSkip,
			Detail: fmt.Sprintf("over %d rows the oracle (whole file in memory, ~7 µs/row) is not run; the counts above are exact instead", b.o.oracleMax)})
	}
	for _, runs := range [][]duckRun{res.DuckDB, res.DuckDBUnordered} {
		if len(runs) == 0 {
			continue
		}
		d := runs[len(runs)-1]
		c := check{Name: "DuckDB (" + d.Mode + ") rows out = Sluice rows out", Status: checkPass, Detail: fmt.Sprintf("%d = %d", d.RowsOut, last.RowsOut)}
		if d.RowsOut != last.RowsOut {
			c.Status, c.Detail = checkWarn, fmt.Sprintf("DuckDB %d, Sluice %d", d.RowsOut, last.RowsOut)
		}
		res.Checks = append(res.Checks, c)
	}
	for _, c := range res.Checks {
		b.log.printf("%s: check %s: %s %s", name, c.Status, c.Name, c.Detail)
	}
	return oracleOut, nil
}

// countChecks holds every run to the generator's counts, which are exact:
// each faulty row breaks one rule, and every valid row's key is in the
// reference.
func countChecks(st genStats, runs []sluiceRun) []check {
	c := check{Name: "Sluice counts = gen's", Status: checkPass,
		Detail: fmt.Sprintf("in %d, out %d, rejected %d in every run", st.Rows, st.Rows-st.Bad, st.Bad)}
	for i, r := range runs {
		if r.RowsIn != st.Rows || r.RowsOut != st.Rows-st.Bad || r.RowsRejected != st.Bad {
			c.Status = checkFail
			c.Detail = fmt.Sprintf("run %d: in/out/rejected %d/%d/%d, gen says %d/%d/%d",
				i+1, r.RowsIn, r.RowsOut, r.RowsRejected, st.Rows, st.Rows-st.Bad, st.Bad)
			break
		}
	}
	return []check{c}
}

// runOracle writes the oracle's output for ds to path, in a child process:
// the oracle holds the whole file in memory, and Linux counts the memory of
// the process that starts a child (Go forks with CLONE_VM) in the child's
// ru_maxrss, so the driver itself must stay small.
func (b *bench) runOracle(ctx context.Context, ds *dataset, path string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	m, err := measure(ctx, nil, self, "oracle", ds.Orders, ds.Financials, path)
	if err != nil {
		return err
	}
	b.log.printf("%s: oracle: %.1fs, peak RSS %.0f MiB", ds.Name, m.Wall.Seconds(), float64(m.MaxRSS)/mib)
	return nil
}

// oracleMain is the child process of runOracle: sluicebench oracle ORDERS REF OUT.
func oracleMain(args []string) error {
	if len(args) != 3 {
		return errors.New("usage: sluicebench oracle ORDERS.csv REFERENCE.csv OUT.csv")
	}
	in, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer in.Close()
	ref, err := os.Open(args[1])
	if err != nil {
		return err
	}
	defer ref.Close()
	res, err := oracle.Run(bufio.NewReaderSize(in, 1<<20), bufio.NewReaderSize(ref, 1<<20))
	if err != nil {
		return err
	}
	return os.WriteFile(args[2], res.CSV(), 0o644)
}

// compareCheck compares the file at path with the file at want; failure is
// the status given when they differ.
func compareCheck(name, path, want string, failure checkStatus) check {
	c := check{Name: name}
	line, lines, err := firstDifference(path, want)
	switch {
	case err != nil:
		c.Status, c.Detail = failure, err.Error()
	case line > 0:
		c.Status, c.Detail = failure, fmt.Sprintf("%s differs from %s first at line %d", path, want, line)
	default:
		c.Status, c.Detail = checkPass, fmt.Sprintf("%d bytes, %d lines", size(want), lines)
	}
	return c
}

// firstDifference streams two files side by side and returns the 1-based
// line where they first differ (0 when they are equal) and the number of
// lines compared.
func firstDifference(pathA, pathB string) (line, lines int, err error) {
	fa, err := os.Open(pathA)
	if err != nil {
		return 0, 0, err
	}
	defer fa.Close()
	fb, err := os.Open(pathB)
	if err != nil {
		return 0, 0, err
	}
	defer fb.Close()
	ra, rb := bufio.NewReaderSize(fa, 1<<20), bufio.NewReaderSize(fb, 1<<20)
	bufA, bufB := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, errA := io.ReadFull(ra, bufA)
		nb, errB := io.ReadFull(rb, bufB)
		a, b := bufA[:na], bufB[:nb]
		m := min(na, nb)
		if i := mismatch(a[:m], b[:m]); i >= 0 {
			return lines + bytes.Count(a[:i], []byte{'\n'}) + 1, lines, nil
		}
		lines += bytes.Count(a[:m], []byte{'\n'})
		if na != nb { // one file ends here, the other goes on
			return lines + 1, lines, nil
		}
		endA, endB := errA == io.EOF || errA == io.ErrUnexpectedEOF, errB == io.EOF || errB == io.ErrUnexpectedEOF
		if !endA && errA != nil {
			return 0, lines, errA
		}
		if !endB && errB != nil {
			return 0, lines, errB
		}
		if endA || endB {
			return 0, lines, nil
		}
	}
}

// mismatch is the index of the first differing byte of a and b (of equal
// length), or -1.
func mismatch(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// profileRun runs Sluice once more with SLUICE_CPUPROFILE (untimed: the
// profiler costs a little) and prints the top of the profile.
func (b *bench) profileRun(ctx context.Context, ds *dataset, data, prof string) error {
	b.log.printf("%s: profiled sluice run (not timed) → %s", ds.Name, prof)
	if _, err := b.runSluice(ctx, ds, data, []string{"SLUICE_CPUPROFILE=" + prof}); err != nil {
		return err
	}
	defer os.RemoveAll(data)
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=30", b.o.bin, prof).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof: %w: %s", err, tail(out, 1000))
	}
	b.log.printf("%s: go tool pprof -top %s %s\n%s", ds.Name, b.o.bin, prof, out)
	return nil
}

// median is the run with the median wall time (the lower one of the two
// middle runs for an even count).
func median[T any](runs []T, wall func(T) float64) T {
	s := slices.Clone(runs)
	slices.SortStableFunc(s, func(a, b T) int {
		switch wa, wb := wall(a), wall(b); {
		case wa < wb:
			return -1
		case wa > wb:
			return 1
		}
		return 0
	})
	return s[(len(s)-1)/2]
}
