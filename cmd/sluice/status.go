package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// places says where a person finds a batch's files: a local path, or an
// s3:// URI with --aws; never a bare bucket key (issue 11 item 9).
type places struct {
	Input   string `json:"inputPath,omitempty"` // the input, while it waits under input/
	Archive string `json:"archivePath,omitempty"`
	Output  string `json:"outputPath,omitempty"`
	Errors  string `json:"errorsPath,omitempty"`
}

func batchPlaces(b sluice.Batch, onAWS bool, data string) places {
	where := func(key string) string {
		if key == "" {
			return ""
		}
		if onAWS {
			return pipeline.S3URI(b.Bucket, key)
		}
		abs, err := filepath.Abs(data)
		if err != nil {
			abs = data
		}
		return filepath.Join(abs, "bucket", filepath.FromSlash(key))
	}
	p := places{Output: where(b.OutputKey), Errors: where(b.ErrorsKey)}
	// The split archives the input as it ends (or as the batch fails);
	// locally the file system says which, on AWS the state does.
	arch := where(pipeline.ArchiveKey(b))
	if onAWS {
		if b.State == sluice.StateSplitting {
			p.Input = where(b.Key)
		} else {
			p.Archive = arch
		}
	} else if _, err := os.Stat(arch); err == nil {
		p.Archive = arch
	} else if in := where(b.Key); fileExists(in) {
		p.Input = in
	}
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// printBatch shows one batch for `status BATCH`.
func printBatch(e env, b sluice.Batch, pl places, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(struct {
			sluice.Batch
			places
		}{b, pl})
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "batch\t%s\nfeed\t%s\nfile\t%s\nstate\t%s\n", b.ID, feedOf(b), sluice.DisplayName(b.Name), b.State)
	if b.RefVersion != "" {
		fmt.Fprintf(w, "reference\t%s (config %s)\n", b.RefVersion, b.ConfigDigest)
	}
	if b.Reason != "" {
		fmt.Fprintf(w, "reason\t%s\n", sluice.DisplayText(b.Reason))
	}
	fmt.Fprintf(w, "chunks\t%s\nrows\t%d in, %d out, %d rejected\n", chunks(b), b.RowsIn, b.RowsOut, b.RowsRejected)
	for _, rc := range b.TopReasons(5) {
		fmt.Fprintf(w, "\t%d × %s\n", rc.Count, rc.Rule)
	}
	for _, k := range []string{"split", "process", "merge", "notify", "total"} {
		if s, ok := pipeline.Durations(b, time.Now())[k]; ok {
			fmt.Fprintf(w, "%s\t%.3fs\n", k, s)
		}
	}
	for _, f := range [][2]string{{"input", pl.Input}, {"archive", pl.Archive}, {"output", pl.Output}, {"errors", pl.Errors}} {
		if f[1] != "" {
			fmt.Fprintf(w, "%s\t%s\n", f[0], sluice.DisplayName(f[1]))
		}
	}
	if b.EmailID != "" {
		fmt.Fprintf(w, "email\t%s\n", b.EmailID)
	}
	for _, d := range b.Deliveries {
		fmt.Fprintf(w, "deliver %s\t%s (%s, %d attempt(s)", d.Sink, d.State, d.Type, d.Attempts)
		if !d.At.IsZero() {
			fmt.Fprintf(w, ", %s", d.At.Format(time.RFC3339))
		}
		fmt.Fprint(w, ")")
		if d.Reason != "" {
			fmt.Fprintf(w, ": %s", sluice.DisplayText(d.Reason))
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}
