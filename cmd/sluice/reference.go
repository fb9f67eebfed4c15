package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/reference"
	"github.com/sluicehq/sluice/pkg/refstore"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqlite"
	"github.com/sluicehq/sluice/pkg/wire"
)

func cmdReference(ctx context.Context, e env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "load":
			return cmdReferenceLoad(ctx, e, args[1:])
		case "list":
			return cmdReferenceList(ctx, e, args[1:])
		}
	}
	return usageErr("usage: sluice reference load [flags] REF.csv | sluice reference list [flags]")
}

func cmdReferenceLoad(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "reference load", "[flags] REF.csv", "Loads a reference CSV as a new reference version and makes it current: batches created\nfrom now on use it, batches in flight keep theirs. An unchanged file is skipped.")
	data := fs.String("data", defaultData(e), "data `directory`; env SLUICE_DATA")
	cfgPath := fs.String("config", "", "pipeline configuration `file` (names the key and append columns)")
	dataset := fs.String("dataset", config.DefaultDataset, "reference dataset `NAME` to load (the feeds' reference.dataset)")
	onAWS := fs.Bool("aws", false, "load into the DynamoDB reference table instead of the local catalog")
	af := addAWSFlags(fs, e)
	pos, err := parseArgs(fs, args, 1, "reference load takes one file")
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	start := time.Now()
	var res reference.Result
	if *onAWS {
		res, err = loadAWSReference(ctx, e, af, cfg, *dataset, pos[0])
	} else {
		var eng *embedded.Engine
		if eng, err = embedded.Open(*data, cfg, logger(e)); err != nil {
			return err
		}
		defer eng.Close()
		res, err = loadReferenceFile(ctx, e, eng, *dataset, pos[0], isTerminal(e.stderr))
	}
	if err != nil {
		return err
	}
	if res.Skipped {
		fmt.Fprintf(e.stdout, "reference unchanged: %s has the content of the current version %s; nothing loaded\n", pos[0], res.Version.ID)
		return nil
	}
	fmt.Fprintf(e.stdout, "reference version %s ready (%d rows from %s) in %.2fs; new batches use it\n", res.Version.ID, res.Version.Rows, pos[0], time.Since(start).Seconds())
	return nil
}

// loadAWSReference loads a reference file into one dataset of the
// DynamoDB reference table and collects its unused versions.
func loadAWSReference(ctx context.Context, e env, af awsFlags, cfg *config.Pipeline, dataset, path string) (reference.Result, error) {
	dcfg, err := cfg.ForDataset(dataset)
	if err != nil {
		return reference.Result{}, err
	}
	ports, err := af.ports(ctx, af.options())
	if err != nil {
		return reference.Result{}, err
	}
	cat, err := ports.Catalogs(dataset)
	if err != nil {
		return reference.Result{}, err
	}
	res, err := reference.LoadFile(ctx, cat, path, dcfg, barFor(e, path))
	if err == nil && !res.Skipped {
		collect(ctx, e, cat, ports.Ledger)
	}
	return res, err
}

// loadReference loads a local reference file for run, serve and console
// (--reference) into the dataset of the engine's feed, saying so when the
// file is unchanged.
func loadReference(ctx context.Context, e env, eng *embedded.Engine, path string, showBar bool) error {
	fc, err := eng.Config.ForFeed(eng.Feed)
	if err != nil {
		return err
	}
	if err := embedded.NoReferenceFile(fc); err != nil {
		return err
	}
	res, err := loadReferenceFile(ctx, e, eng, fc.Dataset(), path, showBar)
	switch {
	case err != nil:
		return err
	case res.Skipped:
		fmt.Fprintf(e.stderr, "reference %s unchanged: it is the current version %s\n", path, res.Version.ID)
	default:
		fmt.Fprintf(e.stderr, "loaded %d reference rows from %s as version %s\n", res.Version.Rows, path, res.Version.ID)
	}
	return nil
}

// loadReferenceFile loads a local reference file, with a progress bar on a
// terminal, and collects the versions no batch uses any more.
func loadReferenceFile(ctx context.Context, e env, eng *embedded.Engine, dataset, path string, showBar bool) (reference.Result, error) {
	var progress func(int64)
	if showBar {
		progress = barFor(e, path)
	}
	cfg, err := eng.Config.ForDataset(dataset)
	if err != nil {
		return reference.Result{}, err
	}
	cat, err := eng.Catalogs(dataset)
	if err != nil {
		return reference.Result{}, err
	}
	res, err := reference.LoadFile(ctx, cat, path, cfg, progress)
	if err != nil {
		return res, err
	}
	if !res.Skipped {
		collect(ctx, e, cat, eng.Ledger)
	}
	return res, nil
}

// collect deletes the versions no unfinished batch uses; a failure only
// leaves them for the next load.
func collect(ctx context.Context, e env, cat sluice.Catalog, ledger sluice.Ledger) {
	gone, err := reference.Collect(ctx, cat, ledger, reference.Grace, time.Now())
	if err != nil {
		fmt.Fprintf(e.stderr, "warning: collecting old reference versions: %v\n", err)
	} else if len(gone) > 0 {
		fmt.Fprintf(e.stderr, "collected %d old reference version(s) no batch uses: %s\n", len(gone), strings.Join(gone, ", "))
	}
}

func barFor(e env, path string) func(int64) {
	st, err := os.Stat(path)
	if err != nil || !isTerminal(e.stderr) {
		return nil
	}
	bar := progressbar.DefaultBytes(st.Size(), "loading reference")
	return func(n int64) { bar.Set64(n) }
}

func cmdReferenceList(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "reference list", "[flags]", "Lists the reference versions, oldest first: which is current, and the batches that use each.")
	data := fs.String("data", defaultData(e), "data `directory`; env SLUICE_DATA")
	asJSON := fs.Bool("json", false, "print JSON")
	dataset := fs.String("dataset", config.DefaultDataset, "reference dataset `NAME` to list")
	onAWS := fs.Bool("aws", false, "list the DynamoDB reference table's versions")
	af := addAWSFlags(fs, e)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := config.ValidName("reference dataset", *dataset); err != nil {
		return usageErr("%s", err)
	}
	var cat sluice.Catalog
	var ledger sluice.Ledger
	if *onAWS {
		ports, err := af.ports(ctx, af.options())
		if err != nil {
			return err
		}
		if cat, err = ports.Catalogs(*dataset); err != nil {
			return err
		}
		ledger = ports.Ledger
	} else {
		// Read-only, without the engine lock, like status.
		dir := filepath.Join(*data, wire.ReferenceDir)
		if *dataset != config.DefaultDataset {
			dir = filepath.Join(dir, wire.DatasetsDir, *dataset)
		}
		st, err := refstore.Open(dir)
		if err != nil {
			return err
		}
		defer st.Close()
		db, err := sqlite.Open(filepath.Join(*data, "sluice.db"))
		if err != nil {
			return err
		}
		defer db.Close()
		cat, ledger = st, db.Ledger()
	}
	us, err := reference.List(ctx, cat, ledger)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(us)
	}
	if len(us) == 0 {
		fmt.Fprintln(e.stdout, "no reference versions (run `sluice reference load REF.csv`)")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tCURRENT\tROWS\tSOURCE\tLOADED\tUNFINISHED BATCHES\tFINISHED")
	for _, u := range us {
		cur := ""
		if u.Current {
			cur = "*"
		}
		batches := strings.Join(u.Batches, ",")
		if batches == "" {
			batches = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\n", u.ID, cur, u.Rows, u.Source, u.LoadedAt.Local().Format(time.DateTime), batches, u.Done)
	}
	return tw.Flush()
}
