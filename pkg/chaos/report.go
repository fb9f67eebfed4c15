package chaos

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints the reports as one table, a row per run, and each
// failed run's failures below it.
func WriteTable(w io.Writer, reps ...Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "backend\trows\tchunks\tworkers\tkills (split/work/merge/notify)\tduring batch\trestarts\tbatch\twall\trows out\trejected (batch/ledger/report/clean)\tdup lines\toutput equal\terrors equal\temails\tqueues empty\tDLQ\tresult")
	for _, r := range reps {
		res := "PASS"
		if !r.OK() {
			res = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d (%d/%d/%d/%d)\t%d\t%d\t%s\t%s\t%d\t%d/%d/%d/%d\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n",
			r.Backend, r.Rows, r.Chunks, r.Workers,
			r.TotalKills(), r.Kills["splitter"], r.Kills["worker"], r.Kills["merger"], r.Kills["notifier"],
			r.KillsDuringBatch, r.Restarts, secs(r.BatchTime), secs(r.Wall), r.RowsOut,
			r.Rejected, r.LedgerRejected, r.ReportRejected, r.CleanRejected, r.DuplicateLines,
			yes(r.OutputEqual), yes(r.ErrorsEqual), emails(r), yes(r.QueuesEmpty), r.DeadLettered, res)
	}
	tw.Flush()
	for _, r := range reps {
		if r.OK() {
			continue
		}
		fmt.Fprintf(w, "\n%s failed:\n  %s\n", r.Backend, strings.Join(r.Failures, "\n  "))
		if r.Dir != "" {
			fmt.Fprintf(w, "  data and service logs kept in %s\n", r.Dir)
		}
	}
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// emails is the report's email count, marked where it is the SES gap.
func emails(r Report) string {
	if r.SESGap {
		return fmt.Sprintf("%d (SES gap)", r.Emails)
	}
	return fmt.Sprint(r.Emails)
}
