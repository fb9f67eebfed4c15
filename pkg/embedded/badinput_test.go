package embedded_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/wire"
)

// The bad-input corpus: testdata/bad holds small files that are wrong in
// one way each; testdata/bad/expected.json says what must become of each,
// and testdata/bad/README.md shows the same table for people (regenerate it
// with `go test ./pkg/embedded -run TestBadInputTable -update`).

var update = flag.Bool("update", false, "rewrite testdata/bad/README.md's table from expected.json")

const badDir = "../../testdata/bad"

// badCase is one row of expected.json.
type badCase struct {
	File string `json:"file"` // the name the file is submitted under
	What string `json:"what"`
	// Source, when set, is the committed file submitted under File's name.
	Source string `json:"source,omitempty"`
	// Generate, when set, names content the test makes (too big to commit).
	Generate string `json:"generate,omitempty"`
	// Event, when set, replaces the upload with a crafted event.
	Event *badEvent `json:"event,omitempty"`
	// PadName, when set, pads File's name (before its extension) with "é"
	// and "x" to this many bytes: names too long to commit as files.
	PadName int `json:"padName,omitempty"`
	// SubjectHas are substrings of the email's subject.
	SubjectHas []string `json:"subjectHas,omitempty"`
	// Configuration changes for this case.
	ChunkRows int         `json:"chunkRows,omitempty"`
	Limits    *limitsDiff `json:"limits,omitempty"`
	// Output and Input, when set, replace the configuration's.
	Output *config.Output `json:"output,omitempty"`
	Input  *config.Input  `json:"input,omitempty"`

	// Outcome is "completed" or "failed" (the batch's state), or
	// "dead-lettered" / "ignored" for an event that makes no batch.
	Outcome string `json:"outcome"`
	// Reason is a key phrase of the failed batch's reason (or of the
	// dead-letter reason).
	Reason       string         `json:"reason,omitempty"`
	RowsIn       int            `json:"rowsIn"`
	RowsOut      int            `json:"rowsOut"`
	RowsRejected int            `json:"rowsRejected"`
	Rules        map[string]int `json:"rules,omitempty"`
	// Errors are the error report's rows as "line,column,rule".
	Errors []string `json:"errors,omitempty"`
	// OutputHas and ErrorsHas are substrings of the output and the report.
	OutputHas []string `json:"outputHas,omitempty"`
	ErrorsHas []string `json:"errorsHas,omitempty"`
	// DLQ is how many messages each queue's dead-letter queue holds after
	// the run (by queue name); absent queues must hold none.
	DLQ map[string]int `json:"dlq,omitempty"`
	// NotArchived: the input cannot be archived (it never was there, or
	// was deleted).
	NotArchived bool `json:"notArchived,omitempty"`
	// Note is the decision behind the outcome, for the README.
	Note string `json:"note,omitempty"`
	// copies runs the case with copyChunks, and scanRange, when not 0, with
	// the split fanned out to scan tasks of that many bytes; set by a test,
	// not the corpus.
	copies    bool
	scanRange int64
}

type badEvent struct {
	Key string `json:"key"`
	// Deleted: the file is uploaded, then deleted before the splitter runs.
	Deleted bool `json:"deleted,omitempty"`
}

type limitsDiff struct {
	MaxFileBytes  int64    `json:"maxFileBytes,omitempty"`
	MaxLineBytes  int      `json:"maxLineBytes,omitempty"`
	MaxColumns    int      `json:"maxColumns,omitempty"`
	MaxRejectRate *float64 `json:"maxRejectRate,omitempty"`
}

// name is the name the file is submitted under.
func (c badCase) name() string {
	if c.PadName <= len(c.File) {
		return c.File
	}
	ext := filepath.Ext(c.File)
	stem := strings.TrimSuffix(c.File, ext)
	pad := c.PadName - len(c.File)
	return stem + strings.Repeat("é", pad/2) + strings.Repeat("x", pad%2) + ext
}

type badCorpus struct {
	Reference string            `json:"reference"`
	Cases     []badCase         `json:"cases"`
	RefCases  []badRefCase      `json:"referenceCases"`
	Generated map[string]string `json:"generated"`
}

// badRefCase is a reference file and whether it loads.
type badRefCase struct {
	File   string `json:"file"`
	What   string `json:"what"`
	Rows   int    `json:"rows,omitempty"` // rows loaded, when it loads
	Reason string `json:"reason,omitempty"`
}

func loadCorpus(t *testing.T) badCorpus {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(badDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c badCorpus
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("expected.json: %v", err)
	}
	return c
}

// generate makes the content of a generated case.
func generate(t *testing.T, name string) []byte {
	t.Helper()
	const header = "uuid,Country,Item Type,Sales Channel,Order Priority,Order Date,Region,Ship Date\n"
	const row = "535113847,Azerbaijan,Snacks,Online,C,10/8/14,Middle East and North Africa,10/23/14\n"
	switch name {
	case "row10MiB": // a valid header, a good row, then one 10 MiB row
		var b bytes.Buffer
		b.WriteString(header + row + "874708545,")
		b.Write(bytes.Repeat([]byte("x"), 10<<20))
		b.WriteString(",Cosmetics,Offline,L,2/22/15,Central America,2/27/15\n" + row)
		return b.Bytes()
	case "line10MiB": // the whole file is one 10 MiB line, no line break
		return bytes.Repeat([]byte("abcdefghij,"), (10<<20)/11+1)
	case "quote10MiB": // a quote opened on line 3 and never closed, 10 MiB on
		var b bytes.Buffer
		b.WriteString(header + row + `874708545,"Panama,Cosmetics,Offline,L,2/22/15,Central America,2/27/15` + "\n")
		for b.Len() < 10<<20 {
			b.WriteString(row)
		}
		return b.Bytes()
	}
	if b, ok := generateFormat(t, name); ok {
		return b
	}
	t.Fatalf("unknown generated content %q", name)
	return nil
}

func (c badCase) content(t *testing.T) []byte {
	t.Helper()
	if c.Generate != "" {
		return generate(t, c.Generate)
	}
	src := c.File
	if c.Source != "" {
		src = c.Source
	}
	b, err := os.ReadFile(filepath.Join(badDir, src))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (c badCase) config() *config.Pipeline {
	cfg := config.Default()
	cfg.CopyChunks = c.copies
	if c.scanRange != 0 {
		cfg.ScanSplit = config.ScanSplit{MinBytes: 1, RangeBytes: c.scanRange}
	}
	if c.ChunkRows > 0 {
		cfg.ChunkRows = c.ChunkRows
	}
	if c.Output != nil {
		cfg.Output = *c.Output
	}
	if c.Input != nil {
		cfg.Input = *c.Input
	}
	if l := c.Limits; l != nil {
		if l.MaxFileBytes > 0 {
			cfg.Limits.MaxFileBytes = l.MaxFileBytes
		}
		if l.MaxLineBytes > 0 {
			cfg.Limits.MaxLineBytes = l.MaxLineBytes
		}
		if l.MaxColumns > 0 {
			cfg.Limits.MaxColumns = l.MaxColumns
		}
		cfg.Limits.MaxRejectRate = l.MaxRejectRate
	}
	return cfg
}

func TestBadInputCorpus(t *testing.T) {
	corpus := loadCorpus(t)
	ref := filepath.Join(badDir, corpus.Reference)
	for _, c := range corpus.Cases {
		t.Run(c.File, func(t *testing.T) {
			t.Parallel()
			runBadCase(t, c, ref)
		})
	}
}

// badRun is what a case left behind.
type badRun struct {
	eng     *embedded.Engine
	batches []sluice.Batch
	dlq     map[string][]string // queue → dead-letter reasons
	emails  []string
}

func runBadCase(t *testing.T, c badCase, ref string) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	eng, err := embedded.Open(t.TempDir(), c.config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	eng.Workers = 2
	if _, _, err := eng.LoadReference(ctx, ref, nil); err != nil {
		t.Fatal(err)
	}

	// Upload, or craft the event, before the stages start: the splitter
	// then meets the bucket exactly as the case means it.
	var batchID string
	switch {
	case c.Event != nil && !c.Event.Deleted:
		ev := sluice.ObjectCreated{Version: sluice.MessageVersion, Bucket: eng.Blobs.Bucket(), Key: c.Event.Key, Size: 10, ETag: "abc", Sequence: "1"}
		if err := eng.Queues[pipeline.QueueIngest].Send(ctx, sluice.Encode(ev)); err != nil {
			t.Fatal(err)
		}
	default:
		in := filepath.Join(t.TempDir(), "upload")
		if err := os.WriteFile(in, c.content(t), 0o644); err != nil {
			t.Fatal(err)
		}
		sub, err := eng.SubmitAs(ctx, in, c.name())
		if err != nil {
			t.Fatal(err)
		}
		batchID = sub.BatchID
		if c.Event != nil && c.Event.Deleted {
			if err := eng.Blobs.Delete(ctx, sub.Key); err != nil {
				t.Fatal(err)
			}
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- eng.Run(runCtx) }()
	var b sluice.Batch
	if batchID != "" && (c.Outcome == "completed" || c.Outcome == "failed") {
		b, err = eng.Wait(ctx, batchID, nil)
		if err != nil {
			stop()
			<-done
			t.Fatalf("waiting for the batch: %v (last state %q)", err, b.State)
		}
	}
	// No message may loop: every stage queue empties (a message retried
	// for ever would keep one busy until its fifth receive).
	drainErr := waitDrained(ctx, eng, time.Minute)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("engine: %v", err)
	}
	if drainErr != nil {
		t.Fatal(drainErr)
	}
	got := inspect(t, eng)
	checkBadCase(t, c, b, got)
}

// waitDrained polls until the four stage queues hold nothing visible, in
// flight or delayed.
func waitDrained(ctx context.Context, eng *embedded.Engine, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		var busy []string
		for _, q := range eng.StageQueues() {
			d, err := q.Depth(ctx)
			if err != nil {
				return err
			}
			if n := d.Visible + d.InFlight + d.Delayed; n > 0 {
				busy = append(busy, fmt.Sprintf("%s: %d visible, %d in flight, %d delayed", q.Name(), d.Visible, d.InFlight, d.Delayed))
			}
		}
		if len(busy) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queues still busy after %v (a message loops?): %s", within, strings.Join(busy, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func inspect(t *testing.T, eng *embedded.Engine) badRun {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	r := badRun{eng: eng, dlq: map[string][]string{}}
	var err error
	if r.batches, err = eng.Ledger.ListBatches(ctx, sluice.BatchFilter{}); err != nil {
		t.Fatal(err)
	}
	for _, q := range eng.StageQueues() {
		dead, err := q.PeekDead(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range dead {
			r.dlq[q.Name()] = append(r.dlq[q.Name()], m.Reason)
			t.Logf("DLQ %s-dlq: %s (%s)", q.Name(), m.Reason, m.Body)
		}
	}
	r.emails, _ = filepath.Glob(filepath.Join(eng.Dir, wire.OutboxDir, "*.eml"))
	return r
}

func checkBadCase(t *testing.T, c badCase, b sluice.Batch, got badRun) {
	t.Helper()
	eng := got.eng

	// Dead-letter queues: exactly what the table says, for every queue.
	for _, q := range eng.StageQueues() {
		if n := len(got.dlq[q.Name()]); n != c.DLQ[q.Name()] {
			t.Errorf("%s-dlq holds %d messages %q; want %d", q.Name(), n, got.dlq[q.Name()], c.DLQ[q.Name()])
		}
	}

	switch c.Outcome {
	case "dead-lettered", "ignored":
		if len(got.batches) != 0 || len(got.emails) != 0 {
			t.Fatalf("%d batches and %d emails; want none", len(got.batches), len(got.emails))
		}
		if c.Reason != "" && !slices.ContainsFunc(slices.Concat(mapValues(got.dlq)...), func(r string) bool { return strings.Contains(r, c.Reason) }) {
			t.Fatalf("no dead-letter reason contains %q: %q", c.Reason, got.dlq)
		}
		return
	case "completed", "failed":
	default:
		t.Fatalf("unknown outcome %q", c.Outcome)
	}

	// One batch, one email, the input archived (not left under input/).
	if len(got.batches) != 1 {
		t.Fatalf("%d batches; want 1", len(got.batches))
	}
	if len(got.emails) != 1 {
		t.Fatalf("%d emails; want exactly 1", len(got.emails))
	}
	subject, text := readEmail(t, got.emails[0])
	archive := eng.Path(pipeline.ArchiveKey(b))
	archived := fileExists(archive)
	if archived == c.NotArchived {
		t.Errorf("input archived: %v; want %v", archived, !c.NotArchived)
	}
	if b.Name != c.name() {
		t.Errorf("the batch keeps the name %q; want %q", b.Name, c.name())
	}
	for _, want := range c.SubjectHas {
		if !strings.Contains(subject, want) {
			t.Errorf("the email's subject %q lacks %q", subject, want)
		}
	}
	if fileExists(eng.Path(b.Key)) {
		t.Errorf("input still under %s", pipeline.InputPrefix)
	}
	if archived {
		if a, _ := os.ReadFile(archive); !bytes.Equal(a, c.content(t)) {
			t.Errorf("the archived input differs from the upload")
		}
	}

	if c.Outcome == "failed" {
		if b.State != sluice.StateFailed {
			t.Fatalf("batch %s (%d in, %d out, %d rejected, reasons %v); want failed with %q", b.State, b.RowsIn, b.RowsOut, b.RowsRejected, b.Reasons, c.Reason)
		}
		if c.Reason == "" || !strings.Contains(b.Reason, c.Reason) {
			t.Fatalf("reason %q; want it to say %q", b.Reason, c.Reason)
		}
		if c.RowsIn > 0 && (b.RowsIn != c.RowsIn || b.RowsOut != c.RowsOut || b.RowsRejected != c.RowsRejected) {
			t.Errorf("rows in %d, out %d, rejected %d; want %d, %d, %d", b.RowsIn, b.RowsOut, b.RowsRejected, c.RowsIn, c.RowsOut, c.RowsRejected)
		}
		if !strings.Contains(subject, "failed") || !strings.Contains(text, b.Reason) {
			t.Fatalf("the failure email does not give the reason:\nSubject: %s\n%s", subject, text)
		}
		// The email says where the input is kept, as a path a person can
		// follow, only when it is.
		if kept := strings.Contains(text, "the file is kept at") && strings.Contains(text, archive); kept == c.NotArchived {
			t.Fatalf("not archived %v, but the email says kept=%v:\n%s", c.NotArchived, kept, text)
		}
		t.Logf("failed: %s", b.Reason)
		return
	}

	if b.State != sluice.StateCompleted {
		t.Fatalf("batch %s, reason %q; want completed", b.State, b.Reason)
	}
	if b.RowsIn != c.RowsIn || b.RowsOut != c.RowsOut || b.RowsRejected != c.RowsRejected {
		t.Errorf("rows in %d, out %d, rejected %d; want %d, %d, %d", b.RowsIn, b.RowsOut, b.RowsRejected, c.RowsIn, c.RowsOut, c.RowsRejected)
	}
	if b.RowsIn != b.RowsOut+b.RowsRejected {
		t.Errorf("rows in %d ≠ out %d + rejected %d: a row was lost or counted twice", b.RowsIn, b.RowsOut, b.RowsRejected)
	}
	if fmt.Sprint(b.Reasons) != fmt.Sprint(nonNil(c.Rules)) {
		t.Errorf("rules %v; want %v", b.Reasons, c.Rules)
	}
	if !strings.Contains(subject, "processed") {
		t.Errorf("email subject %q", subject)
	}

	output, err := os.ReadFile(eng.Path(b.OutputKey))
	if err != nil {
		t.Fatal(err)
	}
	report, err := os.ReadFile(eng.Path(b.ErrorsKey))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(output, []byte("\uFEFF")) {
		t.Errorf("the output starts with a byte-order mark")
	}
	outRecs := readCSV(t, "output", output)
	if len(outRecs)-1 != c.RowsOut {
		t.Errorf("the output holds %d rows; want %d", len(outRecs)-1, c.RowsOut)
	}
	errRecs := readCSV(t, "error report", report)
	if len(errRecs) == 0 || strings.Join(errRecs[0], ",") != strings.Join(pipeline.ErrorReportHeader, ",") {
		t.Fatalf("error report header %q", errRecs)
	}
	var lines []string
	for _, r := range errRecs[1:] {
		lines = append(lines, strings.Join(r[:3], ","))
	}
	if strings.Join(lines, "\n") != strings.Join(c.Errors, "\n") {
		t.Errorf("error report rows (line,column,rule):\n got %q\nwant %q", lines, c.Errors)
	}
	// The ledger holds the same rejected rows.
	rej, err := eng.Ledger.Rejects(t.Context(), b.ID, 0, 1000)
	if err != nil || len(rej) != c.RowsRejected {
		t.Errorf("ledger holds %d rejected rows (%v); want %d", len(rej), err, c.RowsRejected)
	}
	for _, s := range c.OutputHas {
		if !bytes.Contains(output, []byte(s)) {
			t.Errorf("output lacks %q:\n%s", s, clip(output))
		}
	}
	for _, s := range c.ErrorsHas {
		if !bytes.Contains(report, []byte(s)) {
			t.Errorf("error report lacks %q:\n%s", s, clip(report))
		}
	}
}

func nonNil(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return m
}

func mapValues(m map[string][]string) [][]string {
	var out [][]string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func clip(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

func fileExists(p string) bool {
	if p == "" {
		return false
	}
	_, err := os.Stat(p)
	return err == nil
}

// readCSV parses what the pipeline wrote with encoding/csv: whatever the
// input was, the output and the report must be well-formed CSV.
func readCSV(t *testing.T, what string, b []byte) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("the %s is not well-formed CSV: %v\n%s", what, err, clip(b))
	}
	return recs
}

// readEmail returns an .eml's decoded subject and text part.
func readEmail(t *testing.T, path string) (subject, text string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	p, err := mr.NextRawPart()
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = p
	switch strings.ToLower(p.Header.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		r = quotedprintable.NewReader(p)
	case "base64": // the outbox's choice when a line would pass 998 octets
		r = base64.NewDecoder(base64.StdEncoding, p)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return subject, string(body)
}

// TestBadReferenceFiles: a key twice with equal rows loads; with different
// rows the load fails, naming the key, and the catalog is left as it was.
func TestBadReferenceFiles(t *testing.T) {
	corpus := loadCorpus(t)
	for _, c := range corpus.RefCases {
		t.Run(c.File, func(t *testing.T) {
			eng, err := embedded.Open(t.TempDir(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			if _, _, err := eng.LoadReference(t.Context(), filepath.Join(badDir, corpus.Reference), nil); err != nil {
				t.Fatal(err)
			}
			n, _, err := eng.LoadReference(t.Context(), filepath.Join(badDir, c.File), nil)
			if c.Reason == "" {
				if err != nil || n != c.Rows {
					t.Fatalf("loaded %d rows (%v); want %d", n, err, c.Rows)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.Reason) {
				t.Fatalf("load error %v; want one saying %q", err, c.Reason)
			}
			t.Logf("refused: %v", err)
			// The earlier version is still current.
			cur, err := eng.Catalog.Current(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			ref, err := eng.Catalog.Version(t.Context(), cur.ID)
			if err != nil {
				t.Fatal(err)
			}
			vals, err := ref.Lookup(t.Context(), []string{"100672805"})
			if err != nil || vals[0] == nil {
				t.Fatalf("the failed load lost the previous catalog: %v %v", vals, err)
			}
		})
	}
}

// TestSplitRefusesUnsafeKeys: keys that could escape the bucket or hold
// control characters are refused before any batch exists, with an error
// that will not be retried (the message goes to the dead-letter queue);
// names with spaces, unicode or ".." inside a name are fine.
func TestSplitRefusesUnsafeKeys(t *testing.T) {
	eng, err := embedded.Open(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	s := pipeline.Splitter{Deps: eng.Deps()}
	for _, key := range []string{
		"input/../secrets.csv", "input/a/../../x.csv", "../input/x.csv", "input/./x.csv",
		"input/tab\there.csv", "input/new\nline.csv", "input/nul\x00.csv", "input/del\x7f.csv",
		"/input/abs.csv", `input\x.csv`, "input/bad\xff.csv",
	} {
		ev := sluice.ObjectCreated{Version: sluice.MessageVersion, Bucket: eng.Blobs.Bucket(), Key: key, Size: 10, ETag: "e", Sequence: "1"}
		err := s.Split(t.Context(), ev, false)
		if !sluice.IsPermanent(err) || !errors.Is(err, sluice.ErrInvalidKey) {
			t.Errorf("key %q: %v; want a permanent invalid-key error", key, err)
			continue
		}
		if !strings.Contains(err.Error(), "invalid object key") {
			t.Errorf("key %q: unclear error %q", key, err)
		}
	}
	if bs, _ := eng.Ledger.ListBatches(t.Context(), sluice.BatchFilter{}); len(bs) != 0 {
		t.Fatalf("refused keys made %d batches", len(bs))
	}
	// Submit refuses such names up front too.
	for _, name := range []string{"new\nline.csv", "tab\t.csv"} {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Submit(t.Context(), p); err == nil || !strings.Contains(err.Error(), "cannot be used as an object key") {
			t.Errorf("Submit(%q): %v", name, err)
		}
	}
	// And these are ordinary names.
	for _, key := range []string{"input/with space.csv", "input/été 日本 🌍.csv", "input/v1..v2.csv", "input/..hidden.csv"} {
		if err := sluice.ValidateKey(key); err != nil {
			t.Errorf("key %q refused: %v", key, err)
		}
	}
}

// TestBadInputTable: every file in testdata/bad is in the table, every
// committed file the table names exists, and README.md shows the table.
func TestBadInputTable(t *testing.T) {
	corpus := loadCorpus(t)
	named := map[string]bool{"README.md": true, "expected.json": true, ".gitattributes": true, corpus.Reference: true}
	committed := 0
	for _, c := range corpus.Cases {
		switch {
		case c.Generate != "":
			if _, ok := corpus.Generated[c.Generate]; !ok {
				t.Errorf("%s: generated content %q is not described under \"generated\"", c.File, c.Generate)
			}
		case c.Event != nil && !c.Event.Deleted:
		case c.Source != "":
			named[c.Source] = true
		default:
			named[c.File] = true
			committed++
		}
		if c.Outcome == "failed" && c.Reason == "" {
			t.Errorf("%s: a failed case needs the key phrase of its reason", c.File)
		}
	}
	for _, c := range corpus.RefCases {
		named[c.File] = true
	}
	var files []string
	err := filepath.WalkDir(badDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(badDir, p)
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !named[f] {
			t.Errorf("testdata/bad/%s is not in expected.json", f)
		}
		delete(named, f)
	}
	for f := range named {
		t.Errorf("expected.json names %s, which is not in testdata/bad", f)
	}
	if committed < 30 {
		t.Errorf("only %d committed corpus files; want at least 30", committed)
	}
	for _, f := range files {
		if st, err := os.Stat(filepath.Join(badDir, f)); err == nil && st.Size() > 64<<10 {
			t.Errorf("testdata/bad/%s is %d bytes: generate big cases in the test instead", f, st.Size())
		}
	}

	readme := filepath.Join(badDir, "README.md")
	old, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- table: begin (generated from expected.json) -->\n", "<!-- table: end -->\n"
	i, j := bytes.Index(old, []byte(begin)), bytes.Index(old, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the table markers")
	}
	fresh := slices.Concat(old[:i+len(begin)], []byte(renderTable(corpus)), old[j:])
	if bytes.Equal(old, fresh) {
		return
	}
	if *update {
		if err := os.WriteFile(readme, fresh, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("testdata/bad/README.md's table is out of date: go test ./pkg/embedded -run TestBadInputTable -update")
}

func renderTable(c badCorpus) string {
	var b strings.Builder
	cell := func(s string) string {
		return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
	}
	b.WriteString("| # | file | what it is | expected outcome |\n|---|---|---|---|\n")
	for i, k := range c.Cases {
		name := "`" + k.File + "`"
		switch {
		case k.Generate != "":
			name += " *(generated)*"
		case k.Source != "":
			name += " *(copy of `" + k.Source + "`)*"
		case k.Event != nil && !k.Event.Deleted:
			q := strconv.Quote(k.Event.Key) // shows control characters
			name = "event for key `" + q[1:len(q)-1] + "`"
		}
		var cfg []string
		if k.ChunkRows > 0 {
			cfg = append(cfg, fmt.Sprintf("chunkRows=%d", k.ChunkRows))
		}
		if l := k.Limits; l != nil {
			if l.MaxFileBytes > 0 {
				cfg = append(cfg, fmt.Sprintf("limits.maxFileBytes=%d", l.MaxFileBytes))
			}
			if l.MaxLineBytes > 0 {
				cfg = append(cfg, fmt.Sprintf("limits.maxLineBytes=%d", l.MaxLineBytes))
			}
			if l.MaxColumns > 0 {
				cfg = append(cfg, fmt.Sprintf("limits.maxColumns=%d", l.MaxColumns))
			}
		}
		what := k.What
		if len(cfg) > 0 {
			what += " (config: " + strings.Join(cfg, ", ") + ")"
		}
		var out string
		switch k.Outcome {
		case "completed":
			out = fmt.Sprintf("**completed**: %d in, %d out, %d rejected", k.RowsIn, k.RowsOut, k.RowsRejected)
			if len(k.Rules) > 0 {
				var rs []string
				for r, n := range k.Rules {
					rs = append(rs, fmt.Sprintf("`%s` %d", r, n))
				}
				sort.Strings(rs)
				out += " (" + strings.Join(rs, ", ") + ")"
			}
		case "failed":
			out = "**failed**: “…" + k.Reason + "…”"
		case "dead-lettered":
			out = "**dead-lettered**, no batch, no email: “…" + k.Reason + "…”"
		case "ignored":
			out = "**ignored**: no batch, no email"
		}
		if k.NotArchived {
			out += "; nothing to archive"
		}
		if k.Note != "" {
			out += " — " + k.Note
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", i+1, cell(name), cell(what), cell(out))
	}
	b.WriteString("\nReference files (loaded with `sluice reference load` / `Engine.LoadReference`):\n\n| file | what it is | expected outcome |\n|---|---|---|\n")
	for _, k := range c.RefCases {
		out := fmt.Sprintf("**loads** (%d rows)", k.Rows)
		if k.Reason != "" {
			out = "**refused**: “…" + k.Reason + "…”"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k.File, cell(k.What), cell(out))
	}
	b.WriteString("\nGenerated content (made by the test, not committed):\n\n")
	var gs []string
	for g := range c.Generated {
		gs = append(gs, g)
	}
	sort.Strings(gs)
	for _, g := range gs {
		fmt.Fprintf(&b, "- `%s`: %s\n", g, c.Generated[g])
	}
	return b.String()
}
