package console_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/pkg/console"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// chromiumPath finds Debian's chromium. Without it the browser test skips,
// except under CI=true, where it fails: CI must install it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SLUICE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found: the browser test needs Debian's chromium (apt-get install -y chromium), or SLUICE_CHROMIUM=/path/to/chrome"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func repoRoot(t *testing.T) string { return testenv.RepoRoot(t) }

// shots saves screenshots to the test artifacts directory
// (SLUICE_ARTIFACTS, default .ci/artifacts/console) and, with
// SLUICE_UPDATE_SCREENSHOTS=1, to docs/screenshots for the README.
type shots struct {
	t    *testing.T
	dirs []string
}

func newShots(t *testing.T) *shots {
	root := repoRoot(t)
	art := os.Getenv("SLUICE_ARTIFACTS")
	if art == "" {
		art = filepath.Join(root, ".ci", "artifacts")
	}
	s := &shots{t: t, dirs: []string{filepath.Join(art, "console")}}
	if os.Getenv("SLUICE_UPDATE_SCREENSHOTS") == "1" {
		s.dirs = append(s.dirs, filepath.Join(root, "docs", "screenshots"))
	}
	return s
}

// save re-encodes the PNG at the best compression and writes it.
func (s *shots) save(name string, raw []byte) {
	s.t.Helper()
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, img); err != nil {
		s.t.Fatal(err)
	}
	for _, d := range s.dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			s.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, name), buf.Bytes(), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
	s.t.Logf("screenshot %s (%d KiB) in %s", name, buf.Len()>>10, strings.Join(s.dirs, ", "))
}

// TestBrowser drives the console in headless Chromium as a person would:
// upload the seed sample through the form, watch it complete, read the
// counts, download the output; then a file that fails; then phone width.
func TestBrowser(t *testing.T) {
	exe := chromiumPath(t)
	orders, financials := testenv.SeedSample(t)

	eng := newEngine(t, nil, false)
	if _, _, err := eng.LoadReference(t.Context(), financials, nil); err != nil {
		t.Fatal(err)
	}
	eng = startEngine(t, eng)
	f := serve(t, eng, console.Options{})
	sh := newShots(t)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel chromedp.ID) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of #%s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		sh.save(name, png)
	}

	// Upload the seed sample through the form; the form goes to the batch page.
	do("upload the seed sample",
		chromedp.Navigate(f.url+"/"),
		chromedp.WaitVisible(chromedp.ID("upload-form")),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{orders}),
		chromedp.Click(chromedp.ID("upload")),
	)
	id := waitPage(t, bctx, "completed")
	do("wait for the finished page", chromedp.WaitVisible(chromedp.ID("dl-output")))

	// The list shows it completed, with its counts.
	rowSel := chromedp.CSS(`tr[data-batch="` + id + `"]`)
	do("list after the batch", chromedp.Navigate(f.url+"/"), chromedp.WaitVisible(rowSel))
	row, err := chromedp.Run(bctx, chromedp.Text(rowSel))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(row, "completed") || !strings.Contains(row, "testfile.csv") || !strings.Contains(row, "10,000") {
		t.Fatalf("list row: %q", row)
	}
	screenshot("list.png")

	// Its page: counts, stages, and a download link that gives the output.
	do("open the batch page",
		chromedp.Click(chromedp.CSS(`tr[data-batch="`+id+`"] a.file`)),
		chromedp.WaitVisible(chromedp.ID("dl-output")),
	)
	state, rowsIn, rowsOut, rejected := text("state"), text("rows-in"), text("rows-out"), text("rows-rejected")
	if state != "completed" || rowsIn != "10,000" || rowsOut != "10,000" || rejected != "0" {
		t.Fatalf("batch page shows %s, %s in, %s out, %s rejected", state, rowsIn, rowsOut, rejected)
	}
	timeline := text("timeline")
	for _, s := range []string{"split", "process", "merge", "notify"} {
		if !strings.Contains(timeline, s) {
			t.Errorf("timeline %q lacks %s", timeline, s)
		}
	}
	href, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.ID("dl-output"), "href"))
	if err != nil || !href.Exists {
		t.Fatalf("output link: %v %+v", err, href)
	}
	screenshot("batch.png")
	b, err := eng.Ledger.GetBatch(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(eng.Path(b.OutputKey))
	if err != nil {
		t.Fatal(err)
	}
	if got := fetch(t, f.url, href.Value); !bytes.Equal(got, onDisk) {
		t.Fatalf("the output link %s gave %d bytes; the output file has %d", href.Value, len(got), len(onDisk))
	}

	// A file with faulty rows: the page lists why rows were rejected and
	// the first rejected rows with their line numbers and messages.
	faulty := faultyCopy(t, orders, 2000)
	do("upload a file with faulty rows",
		chromedp.Navigate(f.url+"/"),
		chromedp.WaitVisible(chromedp.ID("upload-form")),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{faulty}),
		chromedp.Click(chromedp.ID("upload")),
	)
	fid := waitPage(t, bctx, "completed")
	do("wait for the rejected rows", chromedp.WaitVisible(chromedp.ID("rejects")))
	fb, err := eng.Ledger.GetBatch(t.Context(), fid)
	if err != nil {
		t.Fatal(err)
	}
	first, err := eng.Ledger.Rejects(t.Context(), fid, 0, 1)
	if err != nil || len(first) != 1 || fb.RowsRejected == 0 {
		t.Fatalf("faulty batch: %d rejected, first %v, %v", fb.RowsRejected, first, err)
	}
	if got := text("rows-rejected"); got != fmt.Sprintf("%d", fb.RowsRejected) {
		t.Fatalf("page shows %s rejected, the ledger %d", got, fb.RowsRejected)
	}
	firstRow, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#rejects tbody tr")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(firstRow, fmt.Sprint(first[0].Line)) || !strings.Contains(firstRow, first[0].Message) {
		t.Fatalf("first rejected row on the page %q, in the ledger %+v", firstRow, first[0])
	}
	if reasons := text("reasons"); !strings.Contains(reasons, fb.TopReasons(1)[0].Rule) {
		t.Fatalf("reasons %q lack %s", reasons, fb.TopReasons(1)[0].Rule)
	}
	screenshot("batch-rejects.png")

	// A file whose header lacks the configured columns fails, and its page
	// says why in words.
	bad := filepath.Join(t.TempDir(), "contacts.csv")
	if err := os.WriteFile(bad, []byte("id,name\n1,x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	do("upload a bad file",
		chromedp.Navigate(f.url+"/"),
		chromedp.WaitVisible(chromedp.ID("upload-form")),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{bad}),
		chromedp.Click(chromedp.ID("upload")),
	)
	waitPage(t, bctx, "failed")
	do("failed page", chromedp.WaitVisible(chromedp.ID("failure")))
	if reason := text("reason"); !strings.Contains(reason, "the header lacks the column") {
		t.Fatalf("failed page reason: %q", reason)
	}
	screenshot("batch-failed.png")

	// Phone width: the list fits without sideways scrolling.
	do("phone list",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(f.url+"/"),
		chromedp.WaitVisible(chromedp.ID("batches")),
	)
	overflow, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Error("the list scrolls sideways at phone width")
	}
	screenshot("list-phone.png")
}

// faultyCopy writes the first n rows of the seed orders with some rows
// spoiled the ways the pipeline rejects: a missing field, a bad uuid, an
// empty country, an unknown key.
func faultyCopy(t *testing.T, orders string, n int) string {
	t.Helper()
	raw, err := os.ReadFile(orders)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")[:n+1]
	for i := 1; i < len(lines); i++ {
		f := strings.Split(strings.TrimRight(lines[i], "\r\n"), ",")
		switch {
		case i%50 == 0:
			f = f[:len(f)-1]
		case i%77 == 0:
			f[0] = "12AB"
		case i%91 == 0:
			f[1] = ""
		case i%120 == 0:
			f[0] = "999999999"
		default:
			continue
		}
		lines[i] = strings.Join(f, ",") + "\n"
	}
	p := filepath.Join(t.TempDir(), "orders-faulty.csv")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitPage waits on a batch page until its state badge reads state and
// returns the batch ID from the address. The page reloads itself when the
// batch ends, so a failed look is tried again.
func waitPage(t *testing.T, ctx context.Context, state string) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var loc, got string
	for time.Now().Before(deadline) {
		l, err1 := chromedp.Run(ctx, chromedp.Location())
		g, err2 := chromedp.Run(ctx, chromedp.Evaluate[string](`(function(){var e=document.getElementById("state");return e?e.textContent:""})()`))
		if err1 == nil && err2 == nil {
			if got == "" && g != "" {
				t.Logf("the batch page first shows %q", g)
			}
			loc, got = l, g
			if !strings.Contains(loc, "/batches/") {
				// An error page instead of the batch page: say what it says.
				if msg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(function(){var e=document.getElementById("error");return e?e.textContent:""})()`)); err == nil && msg != "" {
					t.Fatalf("the page at %s shows an error: %s", loc, strings.Join(strings.Fields(msg), " "))
				}
			}
			if got == state && strings.Contains(loc, "/batches/") {
				u, err := url.Parse(loc)
				if err != nil {
					t.Fatal(err)
				}
				return strings.TrimPrefix(u.Path, "/batches/")
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the page at %s never showed %q (last %q)", loc, state, got)
	return ""
}

// fetch follows a link from a page as the browser would.
func fetch(t *testing.T, base, href string) []byte {
	t.Helper()
	if strings.HasPrefix(href, "file:") {
		t.Fatalf("the page links a local file: %s", href)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := url.Parse(href)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", u.ResolveReference(ref).String(), nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", href, res.StatusCode, buf.Bytes())
	}
	return buf.Bytes()
}
