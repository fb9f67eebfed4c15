package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
)

// cmdGC removes what the retention settings let go of in the local data
// directory. (On AWS the bucket's lifecycle rules and the tables' TTL do
// the same job.)
func cmdGC(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "gc", "[flags]", "Removes, for every batch that has ended, the files whose retention period has\npassed (see `retention` in `sluice config default`): intermediates, outputs,\narchived inputs; and the temporary files of writes whose process died.\nBatches still running are never touched. Prints what it removed and the space freed.")
	cfgPath := fs.String("config", "", "pipeline configuration `file` whose retention applies (default: the built-in one)")
	data := fs.String("data", defaultData(e), "data `directory`; env SLUICE_DATA")
	dryRun := fs.Bool("dry-run", false, "only print what would be removed")
	asJSON := fs.Bool("json", false, "print one JSON object on stdout instead of text")
	if _, err := parseArgs(fs, args, 0, "gc takes no arguments"); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	eng, err := embedded.Open(*data, cfg, logger(e))
	if err != nil {
		return err
	}
	defer eng.Close()
	rep, err := eng.GC(ctx, time.Now(), *dryRun)
	if *asJSON {
		if jerr := json.NewEncoder(e.stdout).Encode(rep); jerr != nil {
			return jerr
		}
		return err
	}
	verb := "removed"
	if *dryRun {
		verb = "would remove"
	}
	for _, it := range rep.Items {
		fmt.Fprintf(e.stdout, "%s %-12s %s (%d bytes)\n", verb, it.Kind, it.Path, it.Bytes)
	}
	fmt.Fprintf(e.stdout, "%s %d file(s), %d bytes\n", verb, len(rep.Items), rep.Bytes)
	return err
}
