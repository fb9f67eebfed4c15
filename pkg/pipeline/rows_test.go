package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/csvscan"
	"github.com/sluicehq/sluice/pkg/refstore"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// stringsOnly hides a reference's LookupPacked, so the worker takes the
// path of the catalogs that return strings (DynamoDB, HTTP).
type stringsOnly struct{ sluice.Reference }

// TestPackedOutputMatchesStrings holds the worker's packed-value output
// path (appendPackedAll, appendRefPlain, and their fallbacks) to the
// strings path, on the same real reference table: values with
// delimiters, quotes, line breaks, formula-like starts, non-ASCII text,
// lengths of two uvarint bytes and empty ones; picks in order, reordered
// and partial; the formula guard on and off; unknown keys rejected or
// kept with empty values. Both outputs and error parts must be equal byte
// for byte.
func TestPackedOutputMatchesStrings(t *testing.T) {
	ctx := t.Context()
	store, err := refstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	values := []string{"1", "22.5", "", "a,b", `say "hi"`, "line\nbreak", "cr\rhere", "=1+2", "-3", "é€", strings.Repeat("x", 130), "\x00nul", "tab\tin"}
	rng := rand.New(rand.NewPCG(7, 8))
	const nkeys = 400
	i := 0
	v, err := store.Load(ctx, sluice.RefSource{ID: "20260101T000000.000000Z-pack", Columns: []string{"k", "a", "b", "c"}, Next: func() ([]string, error) {
		if i == nkeys {
			return nil, io.EOF
		}
		i++
		return []string{fmt.Sprint("k", i), values[rng.IntN(len(values))], values[rng.IntN(len(values))], values[rng.IntN(len(values))]}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := store.Version(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	var input bytes.Buffer
	input.WriteString("k,x\n")
	for j := range 600 {
		x := []string{"plain", `"quoted, x"`, "=f", "ü"}[j%4]
		fmt.Fprintf(&input, "k%d,%s\n", rng.IntN(nkeys+nkeys/4)+1, x) // a fifth unknown
	}
	for _, pick := range [][]string{{"a", "b", "c"}, {"c", "a"}, {"b"}} {
		for _, guard := range []bool{false, true} {
			for _, missing := range []string{"reject", "empty"} {
				cfg := config.Default()
				cfg.Columns = nil
				cfg.Reference = config.Reference{Key: "k", Append: pick, OnMissing: missing}
				cfg.FormulaGuard.Output = guard
				name := fmt.Sprintf("%v/guard=%v/%s", pick, guard, missing)
				packedOut, packedErr := runRows(t, cfg, pinned{id: v.ID, Reference: ref}, input.Bytes())
				strOut, strErr := runRows(t, cfg, pinned{id: v.ID, Reference: stringsOnly{ref}}, input.Bytes())
				if !bytes.Equal(packedOut, strOut) || !bytes.Equal(packedErr, strErr) {
					t.Fatalf("%s: packed output differs from strings output:\n%q\n%q", name, packedOut, strOut)
				}
				if len(packedOut) == 0 {
					t.Fatalf("%s: no output", name)
				}
			}
		}
	}
}

// runRows validates, enriches and writes the rows of input (its first
// line the header) as one chunk, and returns the output and error parts.
func runRows(t *testing.T, cfg *config.Pipeline, ref pinned, input []byte) (out, errs []byte) {
	t.Helper()
	w := NewWorker(&Deps{Config: cfg})
	sc := csvscan.NewScanner(bytes.NewReader(input), ',', 1<<20)
	header, err := sc.Next()
	if err != nil {
		t.Fatal(err)
	}
	hfields, _, err := csvscan.Split(csvscan.TrimEOL(header), ',', nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	run := &chunkRun{ref: ref, delim: ',', bufs: &chunkBufs{}, stats: sluice.ChunkStats{Reasons: map[string]int{}}}
	if run.p, err = w.planFor(t.Context(), ref, bytes.Join(hfields, []byte{0}), hfields); err != nil {
		t.Fatal(err)
	}
	for {
		rec, err := sc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		run.validate(sc.Line(), csvscan.TrimEOL(rec))
	}
	if err := w.enrich(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	w.write(run)
	return bytes.Clone(run.bufs.out.Bytes()), bytes.Clone(run.bufs.errs.Bytes())
}
