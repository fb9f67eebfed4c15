package embedded_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/oracle"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/testenv"
	"github.com/sluicehq/sluice/pkg/wire"
)

type runOut struct {
	batch  sluice.Batch
	output []byte
	errors []byte
	emails []string
	eng    *embedded.Engine
}

// runFile runs one file through a fresh engine and returns what it made.
func runFile(t *testing.T, cfg *config.Pipeline, input, reference string) runOut {
	t.Helper()
	eng, err := embedded.Open(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return runOn(t, eng, input, reference)
}

func runOn(t *testing.T, eng *embedded.Engine, input, reference string) runOut {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if reference != "" {
		if _, _, err := eng.LoadReference(ctx, reference, nil); err != nil {
			t.Fatal(err)
		}
	}
	sub, b, err := eng.Process(ctx, input, nil, nil)
	if err != nil {
		t.Fatalf("batch %s: %v (last state %q)", sub.BatchID, err, b.State)
	}
	out := runOut{batch: b, eng: eng}
	if b.OutputKey != "" {
		out.output, _ = os.ReadFile(eng.Path(b.OutputKey))
		out.errors, _ = os.ReadFile(eng.Path(b.ErrorsKey))
	}
	out.emails, _ = filepath.Glob(filepath.Join(eng.Dir, wire.OutboxDir, "*.eml"))
	return out
}

func expectOracle(t *testing.T, got runOut, input, reference string) oracle.Result {
	t.Helper()
	in, err := os.Open(input)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	ref, err := os.Open(reference)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	want, err := oracle.Run(in, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got.batch.State != sluice.StateCompleted {
		t.Fatalf("batch %s, reason %q", got.batch.State, got.batch.Reason)
	}
	if w := want.CSV(); !bytes.Equal(got.output, w) {
		t.Fatalf("output differs from the oracle's (%d vs %d bytes)\n%s", len(got.output), len(w), firstDiff(got.output, w))
	}
	if got.batch.RowsOut != len(want.Rows) || got.batch.RowsRejected != len(want.Rejected) || got.batch.RowsIn != len(want.Rows)+len(want.Rejected) {
		t.Fatalf("counts in %d out %d rejected %d; oracle out %d rejected %d", got.batch.RowsIn, got.batch.RowsOut, got.batch.RowsRejected, len(want.Rows), len(want.Rejected))
	}
	// The error report names the same lines and rules.
	var wantErr []string
	for _, r := range want.Rejected {
		wantErr = append(wantErr, fmt.Sprintf("%d,%s,%s", r.Line, r.Column, r.Rule))
	}
	var gotErr []string
	for _, l := range strings.Split(strings.TrimSpace(string(got.errors)), "\n")[1:] {
		if f := strings.SplitN(l, ",", 4); len(f) == 4 && f[0] != "" && f[0][0] >= '0' && f[0][0] <= '9' {
			gotErr = append(gotErr, strings.Join(f[:3], ","))
		}
	}
	if strings.Join(gotErr, "\n") != strings.Join(wantErr, "\n") {
		t.Fatalf("error report lines/columns/rules differ:\n got %v\nwant %v", head(gotErr), head(wantErr))
	}
	return want
}

func head(xs []string) []string {
	if len(xs) > 10 {
		return xs[:10]
	}
	return xs
}

func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n got %q\nwant %q", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("one is a prefix of the other (%d vs %d lines)", len(al), len(bl))
}

func TestSeedSample(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	got := runFile(t, config.Default(), orders, fin)
	want := expectOracle(t, got, orders, fin)
	if got.batch.RowsOut != 10000 || got.batch.RowsRejected != 0 {
		t.Fatalf("seed: %d out, %d rejected; want 10000, 0", got.batch.RowsOut, got.batch.RowsRejected)
	}
	header := "uuid,Country,Item Type,Sales Channel,Order Priority,Order Date,Region,Ship Date,unitsSold,unitPrice,unitCost,totalRevenue,totalCost,totalProfit\n"
	if !bytes.HasPrefix(got.output, []byte(header)) || len(want.Header) != 14 {
		t.Fatalf("output header %q", bytes.SplitN(got.output, []byte("\n"), 2)[0])
	}
	if len(got.emails) != 1 {
		t.Fatalf("%d emails", len(got.emails))
	}
	// The input is archived, not lost.
	if _, err := os.Stat(got.eng.Path(pipeline.ArchiveKey(got.batch))); err != nil {
		t.Fatalf("input not archived: %v", err)
	}
	if _, err := os.Stat(got.eng.Path("input/testfile.csv")); err == nil {
		t.Fatal("input still under input/")
	}
	man, err := os.ReadFile(got.eng.Path(got.batch.ManifestKey))
	if err != nil || !bytes.Contains(man, []byte(`"rowsOut": 10000`)) || !bytes.Contains(man, []byte(`"sha256"`)) {
		t.Fatalf("manifest %s: %v", man, err)
	}
}

// faulty is a hand-made file with every fault the issue lists.
const faulty = "\xEF\xBB\xBFuuid,Country,Item Type,Sales Channel,Order Priority,Order Date,Region,Ship Date\r\n" +
	"535113847,Azerbaijan,Snacks,Online,C,10/8/14,Middle East and North Africa,10/23/14\r\n" + // valid, CRLF
	"874708545,\"Panama, Republic of\",Cosmetics,Offline,L,2/22/15,\"Central America\nand the Caribbean\",2/27/15\n" + // quoted comma, embedded newline, LF
	"854349935,\"Sao \"\"Tome\"\"\",Fruits,Offline,M,12/9/15,Sub-Saharan Africa,1/18/16\n" + // "" quotes
	"12345,Chad,Fruits,Offline,M,12/9/15,Sub-Saharan Africa,1/18/16\n" + // bad uuid
	"892836844,Sao Tome and Principe,Personal Care,Online,M,9/17/14,Sub-Saharan Africa\n" + // short row
	"892836844,Sao Tome and Principe,Personal Care,Online,M,9/17/14,Sub-Saharan Africa,10/12/14,extra\n" + // long row
	"100672805,Italy,Fruits,Offline,HIGHEST,4/30/11,Europe,6/9/11\n" + // over-long priority
	"100672805,,Fruits,Offline,H,4/30/11,Europe,6/9/11\n" + // empty field
	"999999999,Italy,Fruits,Offline,H,4/30/11,Europe,6/9/11\n" + // unknown key
	"\n" + // blank line: skipped
	"100672805,Italy,Fruits,Offline,H,4/30/11,Europe,6/9/11" // valid, no final newline

const faultyRef = "uuid,unitsSold,unitPrice,unitCost,totalRevenue,totalCost,totalProfit\n" +
	"535113847,934,152.58,97.44,142509.72,91008.96,51500.76\n" +
	"874708545,4551,437.2,263.33,1989697.2,1198414.83,791282.37\n" +
	"854349935,9986,9.33,6.92,93169.38,69103.12,24066.26\n" +
	"892836844,9118,81.73,56.67,745214.14,516717.06,228497.08\n" +
	"100672805,175,9.33,6.92,1632.75,1211,421.750\n"

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFaultyRowsMatchOracle(t *testing.T) {
	in, ref := writeFile(t, "faulty.csv", faulty), writeFile(t, "ref.csv", faultyRef)
	for _, chunk := range []int{10000, 2, 1} {
		t.Run(fmt.Sprintf("chunkRows=%d", chunk), func(t *testing.T) {
			cfg := config.Default()
			cfg.ChunkRows = chunk
			got := runFile(t, cfg, in, ref)
			expectOracle(t, got, in, ref)
			if got.batch.RowsOut != 4 || got.batch.RowsRejected != 6 {
				t.Fatalf("out %d rejected %d; want 4 and 6", got.batch.RowsOut, got.batch.RowsRejected)
			}
			want := map[string]int{"pattern": 1, "field_count": 2, "maxLength": 1, "required": 1, "reference": 1}
			if fmt.Sprint(got.batch.Reasons) != fmt.Sprint(want) {
				t.Fatalf("reasons %v, want %v", got.batch.Reasons, want)
			}
			if !bytes.Contains(got.output, []byte("\"Central America\nand the Caribbean\"")) || !bytes.Contains(got.output, []byte(`"Sao ""Tome"""`)) {
				t.Fatalf("quoted fields lost their quoting:\n%s", got.output)
			}
			if !bytes.Contains(got.errors, []byte(`6,uuid,pattern,"uuid ""12345"" does not match ^[0-9]{9}$",`)) {
				t.Fatalf("error report:\n%s", got.errors)
			}
		})
	}
}

func TestGeneratedFilesMatchOracle(t *testing.T) {
	dir := t.TempDir()
	orders, fin, st, err := gen.WriteFiles(dir, gen.Options{Rows: 30000, Seed: 42, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.ChunkRows = 2500 // 12 chunks: part 10 must come after part 9
	got := runFile(t, cfg, orders, fin)
	expectOracle(t, got, orders, fin)
	if got.batch.RowsRejected != st.Bad || got.batch.TotalChunks != 12 {
		t.Fatalf("rejected %d (gen made %d bad), chunks %d", got.batch.RowsRejected, st.Bad, got.batch.TotalChunks)
	}
	ledger := got.eng.Ledger
	rej, err := ledger.Rejects(t.Context(), got.batch.ID, 0, 100000)
	if err != nil || len(rej) != st.Bad {
		t.Fatalf("ledger holds %d rejected rows (%v), want %d", len(rej), err, st.Bad)
	}
}

func TestWholeFileFailures(t *testing.T) {
	ref := writeFile(t, "ref.csv", faultyRef)
	cases := []struct{ name, content, reason string }{
		{"empty.csv", "", "the file is empty"},
		{"nocols.csv", "id,name\n1,x\n", `the header lacks the column(s) "uuid"`},
		{"semicolon.csv", "uuid;Country;Item Type;Sales Channel;Order Priority;Order Date;Region;Ship Date\n1;2;3;4;5;6;7;8\n", "delimited by something other"},
		{"dupcols.csv", "uuid,uuid,Country\n", `names the column "uuid" more than once`},
		{"gz.csv", "\x1f\x8b\x08\x00rest", "gzip-compressed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := runFile(t, config.Default(), writeFile(t, c.name, c.content), ref)
			if got.batch.State != sluice.StateFailed || !strings.Contains(got.batch.Reason, c.reason) {
				t.Fatalf("state %s reason %q; want failed with %q", got.batch.State, got.batch.Reason, c.reason)
			}
			if len(got.emails) != 1 {
				t.Fatalf("%d failure emails", len(got.emails))
			}
			mail, _ := os.ReadFile(got.emails[0])
			if !bytes.Contains(mail, []byte("failed")) {
				t.Fatalf("email does not say it failed:\n%s", mail)
			}
			if _, err := os.Stat(got.eng.Path(pipeline.ArchiveKey(got.batch))); err != nil {
				t.Fatalf("failed input not archived: %v", err)
			}
		})
	}
}

func TestHeaderOnly(t *testing.T) {
	ref := writeFile(t, "ref.csv", faultyRef)
	got := runFile(t, config.Default(), writeFile(t, "h.csv", strings.SplitN(faulty, "\r\n", 2)[0]+"\r\n"), ref)
	if got.batch.State != sluice.StateCompleted || got.batch.RowsIn != 0 || strings.Count(string(got.output), "\n") != 1 {
		t.Fatalf("header-only: state %s rows %d output %q", got.batch.State, got.batch.RowsIn, got.output)
	}
}

func TestRerunStartsNewBatchAndDuplicateEventIsIgnored(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	eng, err := embedded.Open(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	first := runOn(t, eng, orders, fin)
	// A duplicate of the first upload's event: no second batch, no email.
	ev := sluice.ObjectCreated{Version: 1, Bucket: eng.Blobs.Bucket(), Key: first.batch.Key, Size: first.batch.Size, ETag: first.batch.ETag, Sequence: first.batch.Sequence}
	if err := eng.Queues[pipeline.QueueIngest].Send(t.Context(), sluice.Encode(ev)); err != nil {
		t.Fatal(err)
	}
	second := runOn(t, eng, orders, "")
	if second.batch.ID == first.batch.ID {
		t.Fatal("rerunning a completed file reused its batch")
	}
	if !bytes.Equal(first.output, second.output) {
		t.Fatal("same file, different output")
	}
	bs, _ := eng.Ledger.ListBatches(t.Context(), sluice.BatchFilter{})
	if len(bs) != 2 || len(second.emails) != 2 {
		t.Fatalf("%d batches and %d emails after two runs and a duplicate event; want 2 and 2", len(bs), len(second.emails))
	}
	_ = pipeline.Points
}

func TestFormulaGuard(t *testing.T) {
	in := writeFile(t, "f.csv", "uuid,Country,Item Type,Sales Channel,Order Priority,Order Date,Region,Ship Date\n"+
		"535113847,=HYPERLINK(1),Snacks,Online,C,10/8/14,@Region,10/23/14\n"+
		"=1+1,Chad,Fruits,Offline,M,12/9/15,-Africa,1/18/16\n")
	ref := writeFile(t, "ref.csv", faultyRef)
	for _, guardOut := range []bool{false, true} {
		cfg := config.Default()
		cfg.FormulaGuard.Output = guardOut
		got := runFile(t, cfg, in, ref)
		hasGuard := bytes.Contains(got.output, []byte(`'=HYPERLINK`)) && bytes.Contains(got.output, []byte(",'@Region,"))
		if hasGuard != guardOut {
			t.Fatalf("output guard %v, output:\n%s", guardOut, got.output)
		}
		// The error report is always guarded (the default).
		if !bytes.Contains(got.errors, []byte(`'=1+1,Chad`)) {
			t.Fatalf("error report not guarded:\n%s", got.errors)
		}
	}
}

func TestRecipientsComeFromConfig(t *testing.T) {
	in := writeFile(t, "m.csv", "uuid,Country,Item Type,Sales Channel,Order Priority,Order Date,Region,Ship Date\n"+
		"535113847,evil@attacker.example,Snacks,Online,C,10/8/14,\"To: evil@attacker.example\nBcc: x@y\",10/23/14\n")
	cfg := config.Default()
	cfg.Mail.To = []string{"data@example.com"}
	got := runFile(t, cfg, in, writeFile(t, "ref.csv", faultyRef))
	mail, _ := os.ReadFile(got.emails[0])
	head := string(mail[:bytes.Index(mail, []byte("\r\n\r\n"))])
	if !strings.Contains(head, "To: data@example.com\r\n") || strings.Contains(head, "attacker") || strings.Contains(head, "Bcc") {
		t.Fatalf("mail headers:\n%s", head)
	}
}

// TestStalledBatchSaysSoAndRedriveResumes: a message that reached its
// dead-letter queue (here: received MaxReceive times by processes that
// died) leaves the batch unable to go on; Wait says so instead of hanging,
// and a redrive lets it finish.
func TestStalledBatchSaysSoAndRedriveResumes(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	eng, err := embedded.Open(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
		t.Fatal(err)
	}
	sub, err := eng.Submit(t.Context(), orders)
	if err != nil {
		t.Fatal(err)
	}
	// Five receives that never finish, as five splitters killed in turn.
	for range pipeline.MaxReceive {
		ms, err := eng.Queues[pipeline.QueueIngest].Receive(t.Context(), 1, time.Millisecond, time.Second)
		if err != nil || len(ms) != 1 {
			t.Fatalf("receive: %d, %v", len(ms), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	_, err = eng.Wait(ctx, sub.BatchID, nil)
	if !errors.Is(err, embedded.ErrStalled) || !strings.Contains(err.Error(), "sluice dlq redrive ingest") {
		t.Fatalf("Wait = %v, want ErrStalled naming the ingest queue", err)
	}
	if n, err := eng.Queues[pipeline.QueueIngest].Redrive(ctx); err != nil || n != 1 {
		t.Fatalf("redrive: %d, %v", n, err)
	}
	b, err := eng.Wait(ctx, sub.BatchID, nil)
	if err != nil || b.State != sluice.StateCompleted || b.RowsOut != 10000 {
		t.Fatalf("after the redrive: %v %s %d", err, b.State, b.RowsOut)
	}
	cancel()
	<-done
}
