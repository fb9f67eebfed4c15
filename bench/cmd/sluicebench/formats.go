package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/klauspost/compress/gzip"
)

// formatRun is one timed `sluice run` with a non-CSV input or output.
type formatRun struct {
	Case        string  `json:"case"`
	Wall        float64 `json:"wallSeconds"`
	RowsPerSec  float64 `json:"rowsPerSecond"`
	PeakRSSMiB  float64 `json:"peakRssMiB"`
	RowsOut     int     `json:"rowsOut"`
	Merge       float64 `json:"mergeSeconds"`
	Split       float64 `json:"splitSeconds"`
	LoadAverage string  `json:"loadAverage"`
}

// formatRuns times one run on the gzip-compressed input and one writing
// Parquet, next to the plain run: each must pass the plain run's rows.
func (b *bench) formatRuns(ctx context.Context, ds *dataset, dir, name string, res *result) error {
	gz := filepath.Join(dir, "input", "orders.csv.gz")
	if err := gzipFile(ds.Orders, gz); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "parquet.yaml")
	if err := os.WriteFile(cfg, []byte("output: {format: parquet}\n"), 0o644); err != nil {
		return err
	}
	gzDS, pqDS := *ds, *ds
	gzDS.Orders = gz
	pqDS.RunFlags = []string{"--config", cfg}
	data := filepath.Join(dir, "sluice-formats")
	defer os.RemoveAll(data)
	want := res.Sluice[len(res.Sluice)-1].RowsOut
	for _, c := range []struct {
		name string
		ds   *dataset
	}{{"gzip input", &gzDS}, {"parquet output", &pqDS}} {
		b.log.printf("%s: sluice run, %s", name, c.name)
		r, err := b.runSluice(ctx, c.ds, data, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if r.RowsOut != want {
			return fmt.Errorf("%s: %d rows out, the plain run %d", c.name, r.RowsOut, want)
		}
		res.Formats = append(res.Formats, formatRun{Case: c.name, Wall: r.Wall, RowsPerSec: float64(r.RowsIn) / r.Wall,
			PeakRSSMiB: r.PeakRSSMiB, RowsOut: r.RowsOut, Split: r.Stages.Split, Merge: r.Stages.Merge, LoadAverage: r.LoadAverage})
	}
	return nil
}

func gzipFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		out.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// formatsText is the report's table of the format runs.
func formatsText(results []result) string {
	head := []string{"dataset", "case", "wall s", "rows/s", "split s", "merge s", "peak RSS MiB", "load average"}
	var rows [][]string
	for _, res := range results {
		for _, f := range res.Formats {
			rows = append(rows, []string{res.Dataset, f.Case, f2(f.Wall), strconv.FormatFloat(f.RowsPerSec, 'f', 0, 64), f2(f.Split), f2(f.Merge), f0(f.PeakRSSMiB), f.LoadAverage})
		}
	}
	if len(rows) == 0 {
		return ""
	}
	return "\nOne run each with a gzip-compressed input and with Parquet output (same rows as the plain run):\n\n" + renderTable(head, rows)
}
