package pipeline

import (
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// nopSpool stands in for pkg/spool where only whether it is chosen matters;
// spoolFor never calls it.
type nopSpool struct{ Spool }

// TestSpoolOnlyWhereRetriesGiveTheSameBytes: a batch is spooled only with
// plain CSV output and enrichment that a retry repeats exactly; every
// other batch keeps parts.
func TestSpoolOnlyWhereRetriesGiveTheSameBytes(t *testing.T) {
	pinned := sluice.Batch{ID: "b1", RefVersion: "v1", Header: []string{"uuid", "Country"}}
	unpinned := pinned
	unpinned.RefVersion = ""
	for _, c := range []struct {
		name  string
		set   func(*config.Pipeline)
		b     sluice.Batch
		spool bool
	}{
		{"csv, dataset reference", func(*config.Pipeline) {}, pinned, true},
		{"csv, no enrichment", func(c *config.Pipeline) { c.Reference = config.Reference{} }, unpinned, true},
		{"csv, enriching with no pinned version", func(*config.Pipeline) {}, unpinned, false},
		{"gzip", func(c *config.Pipeline) { c.Output.Compression = config.CompressGzip }, pinned, false},
		{"parquet", func(c *config.Pipeline) { c.Output.Format = config.FormatParquet }, pinned, false},
		{"jsonl", func(c *config.Pipeline) { c.Output.Format = config.FormatJSONL }, pinned, false},
		{"http reference", func(c *config.Pipeline) { c.Reference.HTTP = &config.HTTPReference{} }, pinned, false},
	} {
		cfg := config.Default()
		c.set(cfg)
		d := &Deps{Config: cfg, Spool: nopSpool{}}
		sb, ok := d.spoolFor(c.b)
		if ok != c.spool {
			t.Errorf("%s: spooled %v, want %v", c.name, ok, c.spool)
			continue
		}
		if ok && (sb.Files[0].Key != OutputKeyFor(cfg, c.b) || sb.Files[1].Key != ErrorsKey(c.b) || sb.Files[0].Part(3) != OutputPartKey(c.b, 3) || sb.Files[1].Part(3) != ErrorPartKey(c.b, 3)) {
			t.Errorf("%s: spool files %+v", c.name, sb.Files)
		}
		if _, ok := (&Deps{Config: cfg}).spoolFor(c.b); ok {
			t.Errorf("%s: spooled without a spool (AWS)", c.name)
		}
	}
}
