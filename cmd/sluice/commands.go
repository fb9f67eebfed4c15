package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/sluice"
)

func cmdGen(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "gen", "--rows N --out DIR [flags]", "Writes DIR/orders.csv and DIR/financials.csv in the seed sample's format,\nthe same bytes for the same flags.")
	rows := fs.Int("rows", 0, "order `rows` to write (required)")
	refRows := fs.Int("ref-rows", 0, "reference rows; orders reuse these keys (0: one reference row per order, as in the seed)")
	seed := fs.Int64("seed", 1, "random `seed`")
	bad := fs.Float64("bad-rate", 0.03, "share of faulty rows, 0 to 1")
	out := fs.String("out", "", "output `directory` (required)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *rows <= 0 || *out == "" {
		fs.Usage()
		return usageErr("gen needs --rows > 0 and --out")
	}
	start := time.Now()
	o, f, st, err := gen.WriteFiles(*out, gen.Options{Rows: *rows, RefRows: *refRows, Seed: *seed, BadRate: *bad})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d rows, %d faulty) and %s (%d rows) in %.2fs\n", o, st.Rows, st.Bad, f, st.RefRows, time.Since(start).Seconds())
	return nil
}

func cmdStatus(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "status", "[flags] [BATCH]", "Lists the batches in a data directory, newest first, or shows one batch.")
	data := fs.String("data", defaultData(e), "data `directory`; env SLUICE_DATA")
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 20, "batches to list")
	onAWS := fs.Bool("aws", false, "read the DynamoDB batches table instead of the local ledger")
	af := addAWSFlags(fs, e)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	var l sluice.Ledger
	if *onAWS {
		ports, err := af.ports(ctx, af.options())
		if err != nil {
			return err
		}
		l = ports.Ledger
	} else {
		// Read-only: no engine lock, so status works while a run goes on.
		db, err := openLocalDB(*data, true)
		if err != nil {
			return err
		}
		defer db.Close()
		l = db.Ledger()
	}
	if len(pos) == 1 {
		b, err := l.GetBatch(ctx, pos[0])
		if err != nil {
			return err
		}
		return printBatch(e, b, batchPlaces(b, *onAWS, *data), *asJSON)
	}
	bs, err := l.ListBatches(ctx, sluice.BatchFilter{Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(bs)
	}
	if len(bs) == 0 {
		fmt.Fprintln(e.stdout, "no batches yet")
		return nil
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "BATCH\tFEED\tFILE\tSTATE\tCHUNKS\tROWS IN\tOUT\tREJECTED\tDELIVERED\tCREATED")
	for _, b := range bs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", b.ID, feedOf(b), sluice.DisplayName(b.Name), b.State, chunks(b), b.RowsIn, b.RowsOut, b.RowsRejected,
			cmp.Or(b.DeliverySummary(), "-"), b.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	return w.Flush()
}

// feedOf is the feed a batch ran in: batches from before feeds, and the
// failed batches of objects no feed claimed, show "-".
func feedOf(b sluice.Batch) string {
	if b.Feed == "" {
		return "-"
	}
	return b.Feed
}

func chunks(b sluice.Batch) string {
	if b.TotalChunks < 0 {
		return fmt.Sprintf("%d/?", b.DoneChunks)
	}
	return fmt.Sprintf("%d/%d", b.DoneChunks, b.TotalChunks)
}

func cmdConfig(ctx context.Context, e env, args []string) error {
	if len(args) != 1 || args[0] != "default" {
		return usageErr("usage: sluice config default")
	}
	_, err := e.stdout.Write(config.DefaultYAML())
	return err
}
