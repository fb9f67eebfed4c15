package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// genParams are the flags a dataset was generated with; the stamp file
// beside the data records them, with what gen reported, so that a rerun
// reuses the files.
type genParams struct {
	Rows    int     `json:"rows"`
	RefRows int     `json:"refRows"` // gen --ref-rows; 0 = one per order
	Seed    int64   `json:"seed"`
	BadRate float64 `json:"badRate"`
}

func (p genParams) args(dir string) []string {
	a := []string{"gen", "--rows", strconv.Itoa(p.Rows), "--seed", strconv.FormatInt(p.Seed, 10),
		"--bad-rate", strconv.FormatFloat(p.BadRate, 'g', -1, 64), "--out", dir}
	if p.RefRows > 0 {
		a = append(a, "--ref-rows", strconv.Itoa(p.RefRows))
	}
	return a
}

// genStats is what `sluice gen` reports: every faulty row breaks exactly
// one default rule (unknown keys included), so a correct run outputs
// Rows-Bad rows and rejects Bad.
type genStats struct {
	Rows    int `json:"rows"`
	Bad     int `json:"bad"`
	RefRows int `json:"refRows"`
}

type genStamp struct {
	Params         genParams `json:"params"`
	Stats          genStats  `json:"stats"`
	OrdersBytes    int64     `json:"ordersBytes"`
	FinancialsSize int64     `json:"financialsBytes"`
}

var genLine = regexp.MustCompile(`\((\d+) rows, (\d+) faulty\) and .* \((\d+) rows\)`)

// parseGenOutput reads gen's one line:
// "wrote O (N rows, B faulty) and F (R rows) in 0.40s".
func parseGenOutput(out string) (genStats, error) {
	m := genLine.FindStringSubmatch(out)
	if m == nil {
		return genStats{}, fmt.Errorf("cannot read gen's counts from %q", out)
	}
	var s genStats
	s.Rows, _ = strconv.Atoi(m[1])
	s.Bad, _ = strconv.Atoi(m[2])
	s.RefRows, _ = strconv.Atoi(m[3])
	return s, nil
}

// dataset is one generated pair of files.
type dataset struct {
	Name       string
	Dir        string
	Orders     string
	Financials string
	Stamp      genStamp
	stampText  string
	RunFlags   []string // more flags for `sluice run` (formats.go)
}

// prepare generates the dataset into dir, or reuses it when the stamp says
// it was generated with the same parameters and the files are still whole.
func (b *bench) prepare(ctx context.Context, name, dir string, p genParams) (*dataset, error) {
	ds := &dataset{Name: name, Dir: dir, Orders: filepath.Join(dir, "orders.csv"), Financials: filepath.Join(dir, "financials.csv")}
	stampPath := filepath.Join(dir, "stamp.json")
	if raw, err := os.ReadFile(stampPath); err == nil {
		var st genStamp
		if json.Unmarshal(raw, &st) == nil && st.Params == p && size(ds.Orders) == st.OrdersBytes && size(ds.Financials) == st.FinancialsSize {
			ds.Stamp, ds.stampText = st, string(raw)
			b.log.printf("%s: reusing %s (%d rows, %d faulty, %d reference rows)", name, dir, st.Stats.Rows, st.Stats.Bad, st.Stats.RefRows)
			return ds, nil
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	args := p.args(dir)
	b.log.printf("%s: generating: sluice %v", name, args)
	m, err := measure(ctx, nil, b.o.bin, args...)
	if err != nil {
		return nil, err
	}
	st, err := parseGenOutput(string(m.Stdout))
	if err != nil {
		return nil, err
	}
	if st.Rows != p.Rows {
		return nil, fmt.Errorf("gen wrote %d rows, asked for %d", st.Rows, p.Rows)
	}
	ds.Stamp = genStamp{Params: p, Stats: st, OrdersBytes: size(ds.Orders), FinancialsSize: size(ds.Financials)}
	raw, err := json.MarshalIndent(ds.Stamp, "", "  ")
	if err != nil {
		return nil, err
	}
	ds.stampText = string(raw)
	b.log.printf("%s: generated in %.1fs: %.0f MB of orders, %d faulty rows", name, m.Wall.Seconds(), float64(ds.Stamp.OrdersBytes)/1e6, st.Bad)
	return ds, os.WriteFile(stampPath, raw, 0o644)
}

func size(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

// runJSON is what `sluice run --json` prints.
type runJSON struct {
	BatchID      string  `json:"batchId"`
	Status       string  `json:"status"`
	Reason       string  `json:"reason"`
	RowsIn       int     `json:"rowsIn"`
	RowsOut      int     `json:"rowsOut"`
	RowsRejected int     `json:"rowsRejected"`
	Output       string  `json:"output"`
	Seconds      float64 `json:"seconds"`
}

// batchTimes are the stage timestamps of `sluice status --json BATCH`.
type batchTimes struct {
	State       string    `json:"state"`
	CreatedAt   time.Time `json:"createdAt"`
	SplitAt     time.Time `json:"splitAt"`
	ProcessedAt time.Time `json:"processedAt"`
	MergedAt    time.Time `json:"mergedAt"`
	NotifiedAt  time.Time `json:"notifiedAt"`
}

// stages splits one run's wall time at the batch's timestamps. The process
// stage overlaps the split (workers start on the first chunk), so "process"
// is only what remains after the split ended.
type stages struct {
	Setup   float64 `json:"setup"`   // process start → batch created (start-up, input copied into the bucket)
	Split   float64 `json:"split"`   // created → split ended
	Process float64 `json:"process"` // split ended → last chunk processed
	Merge   float64 `json:"merge"`   // → merged
	Notify  float64 `json:"notify"`  // → email written
	Exit    float64 `json:"exit"`    // → process exited
}

func computeStages(start time.Time, wall time.Duration, t batchTimes) (stages, error) {
	if t.CreatedAt.IsZero() || t.SplitAt.IsZero() || t.ProcessedAt.IsZero() || t.MergedAt.IsZero() || t.NotifiedAt.IsZero() {
		return stages{}, fmt.Errorf("batch record lacks a stage time: %+v", t)
	}
	sec := func(a, b time.Time) float64 { return b.Sub(a).Seconds() }
	return stages{
		Setup:   sec(start, t.CreatedAt),
		Split:   sec(t.CreatedAt, t.SplitAt),
		Process: sec(t.SplitAt, t.ProcessedAt),
		Merge:   sec(t.ProcessedAt, t.MergedAt),
		Notify:  sec(t.MergedAt, t.NotifiedAt),
		Exit:    sec(t.NotifiedAt, start.Add(wall)),
	}, nil
}

// sluiceRun is one timed `sluice run`.
type sluiceRun struct {
	Wall       float64 `json:"wallSeconds"`
	PeakRSSMiB float64 `json:"peakRssMiB"`
	// PeakRssAnonMiB is the anonymous part of the resident set, sampled
	// from /proc/PID/status: RSS counts the mapped reference file's pages,
	// which the kernel can drop, RssAnon only the heap and stacks.
	PeakRssAnonMiB float64 `json:"peakRssAnonMiB"`
	RowsIn         int     `json:"rowsIn"`
	RowsOut        int     `json:"rowsOut"`
	RowsRejected   int     `json:"rowsRejected"`
	BatchID        string  `json:"batchId"`
	Output         string  `json:"output"`
	Stages         stages  `json:"stages"`
	LoadAverage    string  `json:"loadAverage"`
}

// runSluice loads the reference into a fresh data directory (untimed, as
// on AWS where the table is already filled), then times one run.
func (b *bench) runSluice(ctx context.Context, ds *dataset, data string, extraEnv []string) (sluiceRun, error) {
	if err := os.RemoveAll(data); err != nil {
		return sluiceRun{}, err
	}
	if _, err := measure(ctx, nil, b.o.bin, "reference", "load", "--data", data, ds.Financials); err != nil {
		return sluiceRun{}, err
	}
	args := append([]string{"run", "--json", "--no-progress", "--data", data}, ds.RunFlags...)
	m, err := measure(ctx, extraEnv, b.o.bin, append(args, ds.Orders)...)
	if err != nil {
		return sluiceRun{}, err
	}
	var rj runJSON
	if err := json.Unmarshal(m.Stdout, &rj); err != nil {
		return sluiceRun{}, fmt.Errorf("sluice run printed %q: %w", tail(m.Stdout, 500), err)
	}
	if rj.Status != "completed" {
		return sluiceRun{}, fmt.Errorf("batch %s %s: %s", rj.BatchID, rj.Status, rj.Reason)
	}
	st, err := measure(ctx, nil, b.o.bin, "status", "--json", "--data", data, rj.BatchID)
	if err != nil {
		return sluiceRun{}, err
	}
	var bt batchTimes
	if err := json.Unmarshal(st.Stdout, &bt); err != nil {
		return sluiceRun{}, fmt.Errorf("sluice status printed %q: %w", tail(st.Stdout, 500), err)
	}
	if bt.State != "completed" {
		return sluiceRun{}, errors.New("status says batch " + rj.BatchID + " is " + bt.State)
	}
	sg, err := computeStages(m.Start, m.Wall, bt)
	if err != nil {
		return sluiceRun{}, err
	}
	return sluiceRun{
		Wall:           m.Wall.Seconds(),
		PeakRSSMiB:     float64(m.MaxRSS) / mib,
		PeakRssAnonMiB: float64(m.MaxRssAnon) / mib,
		RowsIn:         rj.RowsIn,
		RowsOut:        rj.RowsOut,
		RowsRejected:   rj.RowsRejected,
		BatchID:        rj.BatchID,
		Output:         rj.Output,
		Stages:         sg,
		LoadAverage:    loadAvg(),
	}, nil
}
