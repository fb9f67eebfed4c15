package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"
)

type checkStatus string

const (
	checkPass checkStatus = "PASS"
	checkFail checkStatus = "FAIL" // fails `make bench`
	checkWarn checkStatus = "WARN" // reported only: DuckDB is not under test
	checkSkip checkStatus = "SKIP"
)

type check struct {
	Name   string      `json:"name"`
	Status checkStatus `json:"status"`
	Detail string      `json:"detail"`
}

// result is one dataset's measurements.
type result struct {
	Dataset string      `json:"dataset"`
	Rows    int         `json:"rows"`
	RefRows int         `json:"refRows"`
	InputMB float64     `json:"inputMB"`
	Sluice  []sluiceRun `json:"sluice"`
	DuckDB  []duckRun   `json:"duckdb,omitempty"` // ordered: the job as specified

	DuckDBUnordered []duckRun   `json:"duckdbUnordered,omitempty"` // the same without ORDER BY
	Formats         []formatRun `json:"formats,omitempty"`         // gzip input, Parquet output (formats.go)
	Checks          []check     `json:"checks"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpuModel"`
	MemTotal  string `json:"memTotal"`
	LoadStart string `json:"loadAverageStart"`
	LoadEnd   string `json:"loadAverageEnd"`
}

func (m machine) String() string {
	return fmt.Sprintf("%d CPUs (%s), %s memory", m.CPUs, m.CPUModel, m.MemTotal)
}

func readMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), CPUModel: "unknown", MemTotal: "unknown"}
	if v := procField("/proc/cpuinfo", "model name", ":"); v != "" {
		m.CPUModel = v
	}
	if v := procField("/proc/meminfo", "MemTotal", ":"); v != "" {
		if kb, err := strconv.ParseFloat(strings.TrimSuffix(v, " kB"), 64); err == nil {
			m.MemTotal = fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	return m
}

// procField is the value of the first "key<sep> value" line of a /proc file.
func procField(path, key, sep string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), sep)
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadAvg is the 1, 5 and 15 minute load averages: the machine is shared,
// and a loaded machine explains a slow run.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// datasetName names a row count the way people say it: 1M, 10M, 250k.
func datasetName(rows int) string {
	switch {
	case rows >= 1_000_000 && rows%1_000_000 == 0:
		return strconv.Itoa(rows/1_000_000) + "M"
	case rows >= 1000 && rows%1000 == 0:
		return strconv.Itoa(rows/1000) + "k"
	}
	return strconv.Itoa(rows)
}

func parseSizes(s string) ([]int, error) {
	var sizes []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(f), "_", ""))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-sizes: %q is not a positive row count", f)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

type report struct {
	Date          string  `json:"date"`
	Machine       machine `json:"machine"`
	GoVersion     string  `json:"goVersion"`
	DuckDBVersion string  `json:"duckdbVersion,omitempty"`
	// DriverHWM is this driver's own peak RSS: Linux counts it in every
	// child's ru_maxrss (Go starts children with CLONE_VM), so it is the
	// floor of every RSS figure.
	DriverHWM string   `json:"driverPeakRss"`
	Results   []result `json:"results"`
}

func (r report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func sluiceWall(r sluiceRun) float64 { return r.Wall }
func duckWall(r duckRun) float64     { return r.Wall }

// Text is the summary `make bench` prints: the comparison, the stages of
// Sluice's median run, and the checks.
func (r report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Sluice vs DuckDB, %s\n\n", r.Date)
	fmt.Fprintf(&b, "Machine: %s; load average %s at the start, %s at the end.\n", r.Machine, r.Machine.LoadStart, r.Machine.LoadEnd)
	fmt.Fprintf(&b, "Sluice built with %s", r.GoVersion)
	if r.DuckDBVersion != "" {
		fmt.Fprintf(&b, "; DuckDB %s (@duckdb/node-api)", r.DuckDBVersion)
	}
	fmt.Fprintf(&b, ". Wall and RSS: median of the runs, whole process (peak RSS from ru_maxrss; the driver's own, %s, is its floor).\n\n", r.DriverHWM)

	head := []string{"dataset", "rows", "input MB", "runs", "Sluice wall s", "rows/s", "Sluice peak RSS MiB", "Sluice peak RssAnon MiB", "DuckDB plain join wall s", "DuckDB peak RSS MiB", "Sluice/DuckDB"}
	var rows [][]string
	for _, res := range r.Results {
		s := median(res.Sluice, sluiceWall)
		row := []string{res.Dataset, strconv.Itoa(res.Rows), f1(res.InputMB), strconv.Itoa(len(res.Sluice)),
			f2(s.Wall), fmt.Sprintf("%.0f", float64(s.RowsIn)/s.Wall), f0(s.PeakRSSMiB), f0(s.PeakRssAnonMiB)}
		if duck := headlineDuck(res); len(duck) > 0 {
			d := median(duck, duckWall)
			row = append(row, f2(d.Wall), f0(d.PeakRSSMiB), f2(s.Wall/d.Wall))
		} else {
			row = append(row, "—", "—", "—")
		}
		rows = append(rows, row)
	}
	b.WriteString(renderTable(head, rows))

	b.WriteString("\nStages of Sluice's median run, seconds (process = what remains after the split ended; the two overlap):\n\n")
	head = []string{"dataset", "setup", "split", "process", "merge", "notify", "exit", "wall", "all runs' walls"}
	rows = rows[:0]
	for _, res := range r.Results {
		s := median(res.Sluice, sluiceWall)
		var walls []string
		for _, x := range res.Sluice {
			walls = append(walls, f2(x.Wall))
		}
		g := s.Stages
		rows = append(rows, []string{res.Dataset, f2(g.Setup), f2(g.Split), f2(g.Process), f2(g.Merge), f2(g.Notify), f2(g.Exit), f2(s.Wall), strings.Join(walls, " ")})
	}
	b.WriteString(renderTable(head, rows))

	b.WriteString(formatsText(r.Results))

	if hasDuck(r.Results) {
		b.WriteString("\nDuckDB runs, seconds (script = after node's start-up, from opening the database to the written file;\n" +
			"unordered = the same query without the row numbering and ORDER BY, so rows come out in hash-join order):\n\n")
		head = []string{"dataset", "mode", "wall", "script", "peak RSS MiB", "rows out", "Sluice/DuckDB", "all runs' walls"}
		rows = rows[:0]
		for _, res := range r.Results {
			s := median(res.Sluice, sluiceWall)
			for _, runs := range [][]duckRun{res.DuckDB, res.DuckDBUnordered} {
				if len(runs) == 0 {
					continue
				}
				d := median(runs, duckWall)
				var walls []string
				for _, x := range runs {
					walls = append(walls, f2(x.Wall))
				}
				rows = append(rows, []string{res.Dataset, d.Mode, f2(d.Wall), f2(d.ScriptWall), f0(d.PeakRSSMiB), strconv.Itoa(d.RowsOut), f2(s.Wall / d.Wall), strings.Join(walls, " ")})
			}
		}
		b.WriteString(renderTable(head, rows))
	}

	b.WriteString("\nChecks:\n\n")
	for _, res := range r.Results {
		for _, c := range res.Checks {
			fmt.Fprintf(&b, "- %s %s: %s — %s\n", c.Status, res.Dataset, c.Name, c.Detail)
		}
	}
	return b.String()
}

func hasDuck(rs []result) bool {
	for _, r := range rs {
		if len(r.DuckDB) > 0 {
			return true
		}
	}
	return false
}

func f0(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// renderTable renders a Markdown table with padded columns, so that it
// reads in a terminal and pastes into BENCHMARKS.md.
func renderTable(head []string, rows [][]string) string {
	width := make([]int, len(head))
	for i, h := range head {
		width[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + c + strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)) + " |")
		}
		b.WriteString("\n")
	}
	line(head)
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

// headlineDuck is the DuckDB row a user would compare with: the plain,
// unordered join when it ran, else the ordered one (older results).
func headlineDuck(res result) []duckRun {
	if len(res.DuckDBUnordered) > 0 {
		return res.DuckDBUnordered
	}
	return res.DuckDB
}
