package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/pipeline"
)

// feedRow is one feed as `sluice feeds` shows it.
type feedRow struct {
	Name    string   `json:"name"`
	Prefix  string   `json:"prefix"` // under input/
	Input   string   `json:"input"`  // where its files go: input/<prefix>
	Dataset string   `json:"dataset,omitempty"`
	API     string   `json:"api,omitempty"` // reference.http's URL, for a feed enriched over HTTP
	Output  string   `json:"output"`        // format, then compression when not none
	To      []string `json:"to"`
}

func cmdFeeds(ctx context.Context, e env, args []string) error {
	fs := newFlags(e, "feeds", "[flags]", "Lists the configured feeds: the prefix under input/ each claims (the longest\nmatching prefix wins), the reference dataset it enriches from, its output and recipients.")
	cfgPath := fs.String("config", "", "pipeline configuration `file` (default: the built-in one, one feed named default)")
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usageErr("feeds takes no arguments")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	var rows []feedRow
	for _, f := range cfg.FeedList() {
		r := feedRow{Name: f.Name, Prefix: f.Prefix, Input: pipeline.InputPrefix + f.Prefix, Output: outputOf(f.Output), To: f.Mail.To}
		switch {
		case f.FromHTTP():
			r.API = f.Reference.HTTP.URL
		case f.Enriches():
			r.Dataset = f.Dataset()
		}
		rows = append(rows, r)
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(rows)
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "FEED\tPREFIX\tDATASET\tOUTPUT\tRECIPIENTS")
	for _, r := range rows {
		ds := r.Dataset
		if r.API != "" {
			ds = "http " + r.API
		}
		if ds == "" {
			ds = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", r.Name, r.Input, ds, r.Output, len(r.To))
	}
	return w.Flush()
}

// outputOf names an output as "csv", "jsonl+gzip" and the like.
func outputOf(o config.Output) string {
	f := o.Format
	if f == "" {
		f = "csv"
	}
	if o.Compression != "" && o.Compression != "none" {
		f += "+" + o.Compression
	}
	return f
}
