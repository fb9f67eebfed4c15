package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/console"
	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/fsblob"
	"github.com/sluicehq/sluice/pkg/gen"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// fixture is a console over a real embedded engine on a temporary
// directory, served over real HTTP.
type fixture struct {
	eng *embedded.Engine
	srv *httptest.Server
	url string
}

// newEngine opens an engine on a fresh directory; run starts its stages.
func newEngine(t *testing.T, cfg *config.Pipeline, run bool) *embedded.Engine {
	t.Helper()
	eng, err := embedded.Open(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	if run {
		startEngine(t, eng)
	}
	return eng
}

// engineUploader lets the console hand uploads to the engine's Submit, as
// cmd/sluice wires it.
func engineUploader(eng *embedded.Engine) *console.EngineUploader {
	return console.NewEngineUploader(eng.Dir, eng.Ledger, eng.Blobs, func(ctx context.Context, path, name string) (console.Upload, error) {
		sub, err := eng.SubmitAs(ctx, path, name)
		return console.Upload{BatchID: sub.BatchID, Key: sub.Key, Resumed: sub.Resumed}, err
	}, fsblob.ETagOfFile)
}

// startEngine runs the engine's stages until the test ends.
func startEngine(t *testing.T, eng *embedded.Engine) *embedded.Engine {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("engine: %v", err)
		}
	})
	return eng
}

// serve mounts a console over eng; cleanups run in reverse, so the server
// stops before the engine does.
func serve(t *testing.T, eng *embedded.Engine, opt console.Options) *fixture {
	t.Helper()
	h := console.New(console.Deps{Ledger: eng.Ledger, Blobs: eng.Blobs, Uploader: engineUploader(eng), Options: opt})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{eng: eng, srv: srv, url: srv.URL}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

func do(t *testing.T, method, u string, body io.Reader, hdr map[string]string) resp {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func get(t *testing.T, u string) resp { return do(t, "GET", u, nil, nil) }

// multipartBody builds a form with the file under field "file".
func multipartBody(t *testing.T, name string, content []byte) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(content)
	mw.Close()
	return &buf, mw.FormDataContentType()
}

func upload(t *testing.T, base, name string, content []byte) console.UploadResult {
	t.Helper()
	body, ct := multipartBody(t, name, content)
	r := do(t, "POST", base+"/api/uploads", body, map[string]string{"Content-Type": ct})
	if r.status != http.StatusCreated {
		t.Fatalf("upload %s: %d %s", name, r.status, r.body)
	}
	var res console.UploadResult
	r.json(t, &res)
	if res.BatchID == "" || res.Key != "input/"+name || res.Links == nil {
		t.Fatalf("upload result %+v", res)
	}
	return res
}

// waitDone polls the batch over the API until it ends.
func waitDone(t *testing.T, base, id string) console.BatchView {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := get(t, base+"/api/batches/"+id)
		if r.status != http.StatusOK {
			t.Fatalf("GET batch %s: %d %s", id, r.status, r.body)
		}
		var v console.BatchView
		r.json(t, &v)
		if v.Terminal && (v.State == "failed" || !v.NotifiedAt.IsZero()) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s still %s", id, v.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func wantError(t *testing.T, r resp, status int, contains string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error content type %q", ct)
	}
	var e struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	r.json(t, &e)
	if e.Status != status || e.Error == "" || !strings.Contains(e.Error, contains) {
		t.Fatalf("error body %s, want status %d and %q", r.body, status, contains)
	}
}

// TestAPI runs three uploads through one engine and checks every read.
func TestAPI(t *testing.T) {
	dir := t.TempDir()
	orders, fin, st, err := gen.WriteFiles(dir, gen.Options{Rows: 3000, Seed: 7, BadRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.ChunkRows = 500
	eng := newEngine(t, cfg, true)
	if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
		t.Fatal(err)
	}
	f := serve(t, eng, console.Options{})
	content, err := os.ReadFile(orders)
	if err != nil {
		t.Fatal(err)
	}

	up := upload(t, f.url, "orders.csv", content)
	// The batch is there at once (queued until the splitter records it).
	if r := get(t, f.url+"/api/batches/"+up.BatchID); r.status != http.StatusOK {
		t.Fatalf("batch right after upload: %d %s", r.status, r.body)
	}
	v := waitDone(t, f.url, up.BatchID)

	// A second file as a raw body, and a file that fails as a whole.
	small := strings.Join(strings.SplitAfter(string(content), "\n")[:101], "")
	r := do(t, "POST", f.url+"/api/uploads?name=small.csv", strings.NewReader(small), map[string]string{"Content-Type": "text/csv"})
	if r.status != http.StatusCreated {
		t.Fatalf("raw upload: %d %s", r.status, r.body)
	}
	var smallUp console.UploadResult
	r.json(t, &smallUp)
	smallV := waitDone(t, f.url, smallUp.BatchID)
	failUp := upload(t, f.url, "bad.csv", []byte("id,name\n1,x\n"))
	failV := waitDone(t, f.url, failUp.BatchID)

	t.Run("detail", func(t *testing.T) {
		b, err := eng.Ledger.GetBatch(t.Context(), up.BatchID)
		if err != nil {
			t.Fatal(err)
		}
		if v.State != "completed" || v.File != "orders.csv" || v.Size != int64(len(content)) {
			t.Fatalf("batch %+v", v)
		}
		if v.RowsIn != st.Rows || v.RowsOut+v.RowsRejected != v.RowsIn || v.RowsRejected == 0 || v.RowsRejected != b.RowsRejected {
			t.Fatalf("rows in %d out %d rejected %d (generated %d, ledger %d rejected)", v.RowsIn, v.RowsOut, v.RowsRejected, st.Rows, b.RowsRejected)
		}
		if v.TotalChunks != 6 || v.DoneChunks != 6 || v.Progress != 1 {
			t.Fatalf("chunks %d/%d progress %v", v.DoneChunks, v.TotalChunks, v.Progress)
		}
		for _, k := range []string{"split", "process", "merge", "notify", "total"} {
			if _, ok := v.Timings[k]; !ok {
				t.Errorf("timings lack %q: %v", k, v.Timings)
			}
		}
		if len(v.Stages) != 4 {
			t.Fatalf("stages %+v", v.Stages)
		}
		for _, s := range v.Stages {
			if s.Status != "done" {
				t.Errorf("stage %+v not done", s)
			}
		}
		want := b.TopReasons(5)
		if len(v.TopReasons) != len(want) || len(want) == 0 {
			t.Fatalf("top reasons %v, want %v", v.TopReasons, want)
		}
		for i := range want {
			if v.TopReasons[i] != want[i] {
				t.Fatalf("top reasons %v, want %v", v.TopReasons, want)
			}
		}
		l := v.Links
		if l.Output != "/api/batches/"+v.ID+"/output" || l.ErrorsCSV == "" || l.Manifest == "" || l.Page != "/batches/"+v.ID {
			t.Fatalf("links %+v", l)
		}
		// The JSON names are part of the API.
		var raw map[string]any
		get(t, f.url+"/api/batches/"+v.ID).json(t, &raw)
		for _, k := range []string{"batchId", "file", "state", "reason", "doneChunks", "totalChunks", "rowsIn", "rowsOut", "rowsRejected", "topReasons", "timings", "stages", "createdAt", "links"} {
			if _, ok := raw[k]; !ok && k != "reason" {
				t.Errorf("batch JSON lacks %q", k)
			}
		}
	})

	t.Run("failed", func(t *testing.T) {
		if failV.State != "failed" || !strings.Contains(failV.Reason, "the header lacks the column") {
			t.Fatalf("failed batch %+v", failV)
		}
		if failV.Links.Output != "" {
			t.Fatalf("a failed batch links an output: %+v", failV.Links)
		}
		wantError(t, get(t, f.url+"/api/batches/"+failV.ID+"/output"), 404, "the header lacks the column")
		if failV.Stages[0].Status != "failed" {
			t.Fatalf("stages %+v", failV.Stages)
		}
	})

	t.Run("list", func(t *testing.T) {
		var all console.BatchList
		get(t, f.url+"/api/batches").json(t, &all)
		if len(all.Batches) != 3 || all.NextCursor != "" {
			t.Fatalf("list: %d batches, next %q", len(all.Batches), all.NextCursor)
		}
		wantOrder := []string{failV.ID, smallV.ID, v.ID} // newest first
		for i, b := range all.Batches {
			if b.ID != wantOrder[i] {
				t.Fatalf("list order %v, want %v", ids(all.Batches), wantOrder)
			}
		}
		// Cursor paging, one at a time.
		var got []string
		next := f.url + "/api/batches?limit=1"
		for next != "" {
			var p console.BatchList
			get(t, next).json(t, &p)
			if len(p.Batches) != 1 {
				t.Fatalf("page %s: %d batches", next, len(p.Batches))
			}
			got = append(got, p.Batches[0].ID)
			next = ""
			if p.NextCursor != "" {
				next = f.url + "/api/batches?limit=1&cursor=" + url.QueryEscape(p.NextCursor)
			}
		}
		if strings.Join(got, ",") != strings.Join(wantOrder, ",") {
			t.Fatalf("cursor pages %v, want %v", got, wantOrder)
		}
		// Numbered pages.
		var p2 console.BatchList
		get(t, f.url+"/api/batches?limit=2&page=2").json(t, &p2)
		if len(p2.Batches) != 1 || p2.Batches[0].ID != v.ID || p2.NextPage != 0 {
			t.Fatalf("page 2: %v next %d", ids(p2.Batches), p2.NextPage)
		}
		var p1 console.BatchList
		get(t, f.url+"/api/batches?limit=2&page=1").json(t, &p1)
		if len(p1.Batches) != 2 || p1.NextPage != 2 {
			t.Fatalf("page 1: %v next %d", ids(p1.Batches), p1.NextPage)
		}
		var p9 console.BatchList
		get(t, f.url+"/api/batches?page=9").json(t, &p9)
		if p9.Batches == nil || len(p9.Batches) != 0 {
			t.Fatalf("page past the end: %+v", p9)
		}
		// Filter by state.
		var failed, completed console.BatchList
		get(t, f.url+"/api/batches?state=failed").json(t, &failed)
		get(t, f.url+"/api/batches?state=completed").json(t, &completed)
		if len(failed.Batches) != 1 || failed.Batches[0].ID != failV.ID || len(completed.Batches) != 2 {
			t.Fatalf("failed %v, completed %v", ids(failed.Batches), ids(completed.Batches))
		}
	})

	t.Run("errors", func(t *testing.T) {
		all, err := eng.Ledger.Rejects(t.Context(), v.ID, 0, 1_000_000)
		if err != nil {
			t.Fatal(err)
		}
		var got []console.RejectView
		after, pages := int64(0), 0
		for {
			var p console.RejectList
			r := get(t, fmt.Sprintf("%s/api/batches/%s/errors?after=%d&limit=37", f.url, v.ID, after))
			if r.status != 200 {
				t.Fatalf("errors: %d %s", r.status, r.body)
			}
			r.json(t, &p)
			pages++
			if len(p.Rejects) > 37 || p.RowsRejected != v.RowsRejected {
				t.Fatalf("page of %d rejects, rowsRejected %d", len(p.Rejects), p.RowsRejected)
			}
			got = append(got, p.Rejects...)
			if p.NextAfter == 0 {
				break
			}
			after = p.NextAfter
		}
		if len(got) != len(all) || len(got) != v.RowsRejected || pages < 2 {
			t.Fatalf("%d rejects in %d pages, ledger has %d, batch says %d", len(got), pages, len(all), v.RowsRejected)
		}
		for i, r := range all {
			g := got[i]
			if g.Line != r.Line || g.Rule != r.Rule || g.Message != r.Message || g.Raw != r.Raw || g.Column != r.Column {
				t.Fatalf("reject %d: %+v, ledger %+v", i, g, r)
			}
			if i > 0 && got[i].Line <= got[i-1].Line {
				t.Fatalf("rejects out of line order at %d", i)
			}
		}
		// The whole report, two ways.
		disk, err := os.ReadFile(eng.Path(pathOf(t, eng, v.ID, "errors")))
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"/errors.csv", "/errors?format=csv"} {
			r := get(t, f.url+"/api/batches/"+v.ID+u)
			if r.status != 200 || !bytes.Equal(r.body, disk) {
				t.Fatalf("%s: %d, %d bytes; the report has %d", u, r.status, len(r.body), len(disk))
			}
			if !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") || !strings.Contains(r.header.Get("Content-Disposition"), `filename=orders.errors.csv`) {
				t.Fatalf("%s headers %v", u, r.header)
			}
		}
		if !strings.HasPrefix(string(disk), "line,column,rule,message,row\n") {
			t.Fatalf("error report starts %q", disk[:40])
		}
	})

	t.Run("downloads", func(t *testing.T) {
		for _, c := range []struct{ path, kind, name string }{
			{"/output", "output", "orders.csv"},
			{"/manifest", "manifest", "orders.manifest.json"},
		} {
			disk, err := os.ReadFile(eng.Path(pathOf(t, eng, v.ID, c.kind)))
			if err != nil {
				t.Fatal(err)
			}
			r := get(t, f.url+"/api/batches/"+v.ID+c.path)
			if r.status != 200 || !bytes.Equal(r.body, disk) {
				t.Fatalf("%s: %d, %d bytes; the file on disk has %d", c.path, r.status, len(r.body), len(disk))
			}
			if cd := r.header.Get("Content-Disposition"); cd != "attachment; filename="+c.name {
				t.Fatalf("%s: Content-Disposition %q", c.path, cd)
			}
			if r.header.Get("Content-Length") != fmt.Sprint(len(disk)) {
				t.Fatalf("%s: Content-Length %q", c.path, r.header.Get("Content-Length"))
			}
		}
		out := get(t, f.url+"/api/batches/"+smallV.ID+"/output")
		if smallV.RowsIn != 100 || out.status != 200 || !strings.HasPrefix(string(out.body), "uuid,Country,") {
			t.Fatalf("small batch: %d rows in, output %d", smallV.RowsIn, out.status)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			status       int
			contains     string
		}{
			{"GET", "/api/batches/0123456789abcdef0123", 404, "there is no batch"},
			{"GET", "/api/batches/0123456789abcdef0123/errors", 404, "there is no batch"},
			{"GET", "/api/batches/0123456789abcdef0123/errors.csv", 404, "there is no batch"},
			{"GET", "/api/batches/0123456789abcdef0123/output", 404, "there is no batch"},
			{"GET", "/api/nothing-here", 404, "no such API endpoint"},
			{"GET", "/api/batches/bad%21id", 400, "not a batch ID"},
			{"GET", "/api/batches?state=sleeping", 400, "unknown state"},
			{"GET", "/api/batches?limit=0", 400, "limit"},
			{"GET", "/api/batches?limit=x", 400, "limit"},
			{"GET", "/api/batches?page=0", 400, "page"},
			{"GET", "/api/batches?cursor=%21%21", 400, "cursor"},
			{"GET", "/api/batches?cursor=abc&page=2", 400, "either cursor or page"},
			{"GET", "/api/batches/" + v.ID + "/errors?after=-1", 400, "after"},
			{"GET", "/api/batches/" + v.ID + "/errors?limit=100000", 400, "limit"},
			{"GET", "/api/batches/" + v.ID + "/errors?format=xml", 400, "format"},
			{"DELETE", "/api/batches", 405, "not allowed"},
			{"GET", "/api/uploads", 405, "not allowed"},
			{"POST", "/api/uploads", 400, "?name="},
			{"POST", "/api/uploads/url?name=a.csv", 501, "POST it to"},
		} {
			t.Run(c.method+" "+c.path, func(t *testing.T) {
				wantError(t, do(t, c.method, f.url+c.path, nil, nil), c.status, c.contains)
			})
		}
		// Uploads that cannot be taken.
		body, ct := multipartBody(t, "empty.csv", nil)
		wantError(t, do(t, "POST", f.url+"/api/uploads", body, map[string]string{"Content-Type": ct}), 400, "empty")
		body, ct = multipartBody(t, "", []byte("a\n1\n"))
		wantError(t, do(t, "POST", f.url+"/api/uploads", body, map[string]string{"Content-Type": ct}), 400, "choose a file")
		wantError(t, do(t, "POST", f.url+"/api/uploads?name=a%01b.csv", strings.NewReader("a\n"), nil), 400, "cannot be used")
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mw.WriteField("other", "x")
		mw.Close()
		wantError(t, do(t, "POST", f.url+"/api/uploads", &buf, map[string]string{"Content-Type": mw.FormDataContentType()}), 400, `no "file" field`)
		// A page from another site cannot post to the console.
		r := do(t, "POST", f.url+"/api/uploads?name=x.csv", strings.NewReader("a\n"), map[string]string{"Origin": "https://evil.example"})
		wantError(t, r, 403, "cross-origin")
	})
}

// pathOf is the object key of one of a batch's outputs.
func pathOf(t *testing.T, eng *embedded.Engine, id, kind string) string {
	t.Helper()
	b, err := eng.Ledger.GetBatch(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"output": b.OutputKey, "errors": b.ErrorsKey, "manifest": b.ManifestKey}[kind]
}

func ids(bs []console.BatchView) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

func TestUploadTooLarge(t *testing.T) {
	eng := newEngine(t, nil, false)
	f := serve(t, eng, console.Options{MaxUploadBytes: 1000})
	big := bytes.Repeat([]byte("123456789,x\n"), 500) // 6000 bytes
	body, ct := multipartBody(t, "big.csv", big)
	wantError(t, do(t, "POST", f.url+"/api/uploads", body, map[string]string{"Content-Type": ct}), 413, "larger than the upload limit of 1000 B")
	wantError(t, do(t, "POST", f.url+"/api/uploads?name=big.csv", bytes.NewReader(big), nil), 413, "larger than the upload limit")
	// Without a Content-Length the limit holds all the same.
	wantError(t, do(t, "POST", f.url+"/api/uploads?name=big.csv", io.MultiReader(bytes.NewReader(big)), nil), 413, "larger than the upload limit")
	// At the limit is fine.
	body, ct = multipartBody(t, "ok.csv", big[:1000])
	if r := do(t, "POST", f.url+"/api/uploads", body, map[string]string{"Content-Type": ct}); r.status != 201 {
		t.Fatalf("upload at the limit: %d %s", r.status, r.body)
	}
	// The form says so in a page.
	body, ct = multipartBody(t, "big.csv", big)
	r := do(t, "POST", f.url+"/upload", body, map[string]string{"Content-Type": ct})
	if r.status != 413 || !strings.Contains(string(r.body), "larger than the upload limit") {
		t.Fatalf("form upload too large: %d", r.status)
	}
	if objs, _ := eng.Blobs.List(t.Context(), "input/"); len(objs) != 1 || objs[0].Key != "input/ok.csv" {
		t.Fatalf("input/ holds %v", objs)
	}
}

// TestUploadBusy: with no stages running, an upload waits in input/; the
// same file again finds the same batch, a different file of that name is
// refused rather than pulled from under it.
func TestUploadBusy(t *testing.T) {
	eng := newEngine(t, nil, false)
	f := serve(t, eng, console.Options{})
	a := upload(t, f.url, "orders.csv", []byte("uuid,Country\n1,x\n"))
	again := upload(t, f.url, "orders.csv", []byte("uuid,Country\n1,x\n"))
	if again.BatchID != a.BatchID {
		t.Fatalf("same file twice: batches %s and %s", a.BatchID, again.BatchID)
	}
	// Its page and API show it as queued until the splitter records it.
	var v console.BatchView
	get(t, f.url+"/api/batches/"+a.BatchID).json(t, &v)
	if v.State != console.StateQueued || v.File != "orders.csv" || v.Terminal {
		t.Fatalf("queued batch %+v", v)
	}
	if r := get(t, f.url+"/batches/"+a.BatchID); r.status != 200 || !strings.Contains(string(r.body), "waiting for the splitter") {
		t.Fatalf("queued page: %d", r.status)
	}
	body, ct := multipartBody(t, "orders.csv", []byte("uuid,Country\n2,y\n"))
	wantError(t, do(t, "POST", f.url+"/api/uploads", body, map[string]string{"Content-Type": ct}), 409, "still being processed")
}

func TestToken(t *testing.T) {
	eng := newEngine(t, nil, false)
	f := serve(t, eng, console.Options{Token: "s3cret"})
	bearer := map[string]string{"Authorization": "Bearer s3cret"}

	wantError(t, get(t, f.url+"/api/batches"), 401, "needs a token")
	wantError(t, do(t, "GET", f.url+"/api/batches", nil, map[string]string{"Authorization": "Bearer nope"}), 401, "not valid")
	wantError(t, get(t, f.url+"/api/batches?token=nope"), 401, "not valid")
	wantError(t, do(t, "POST", f.url+"/api/uploads?name=a.csv", strings.NewReader("a\n1\n"), nil), 401, "needs a token")
	if r := do(t, "GET", f.url+"/api/batches", nil, bearer); r.status != 200 {
		t.Fatalf("with the bearer token: %d %s", r.status, r.body)
	}
	if r := get(t, f.url+"/api/batches?token=s3cret"); r.status != 200 {
		t.Fatalf("with ?token=: %d", r.status)
	}
	// Pages: 401 in HTML, then ?token= sets a cookie and drops the token
	// from the address.
	r := get(t, f.url+"/")
	if r.status != 401 || !strings.Contains(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("page without token: %d %s", r.status, r.header.Get("Content-Type"))
	}
	if strings.Contains(string(r.body), "s3cret") {
		t.Fatal("the 401 page shows the token")
	}
	r = get(t, f.url+"/?state=failed&token=s3cret")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/?state=failed" {
		t.Fatalf("?token= on a page: %d Location %q", r.status, r.header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		cookie = c
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || strings.Contains(cookie.Value, "s3cret") {
		t.Fatalf("cookie %+v", cookie)
	}
	withCookie := map[string]string{"Cookie": cookie.Name + "=" + cookie.Value}
	if r := do(t, "GET", f.url+"/", nil, withCookie); r.status != 200 || strings.Contains(string(r.body), "s3cret") {
		t.Fatalf("page with the cookie: %d", r.status)
	}
	if r := do(t, "GET", f.url+"/api/batches", nil, withCookie); r.status != 200 {
		t.Fatalf("API with the cookie: %d", r.status)
	}
	if r := do(t, "GET", f.url+"/", nil, map[string]string{"Cookie": cookie.Name + "=forged"}); r.status != 401 {
		t.Fatalf("forged cookie: %d", r.status)
	}
	// Static files and the health check need no token.
	if r := get(t, f.url+"/static/console.css"); r.status != 200 {
		t.Fatalf("css: %d", r.status)
	}
	if r := get(t, f.url+"/healthz"); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
}

// TestPages checks the server-rendered pages without a browser.
func TestPages(t *testing.T) {
	eng := newEngine(t, nil, true)
	f := serve(t, eng, console.Options{})
	failUp := upload(t, f.url, "bad.csv", []byte("id,name\n1,x\n"))
	waitDone(t, f.url, failUp.BatchID)

	r := get(t, f.url+"/")
	page := string(r.body)
	if r.status != 200 || !strings.Contains(page, `name="viewport"`) || !strings.Contains(page, "bad.csv") || !strings.Contains(page, `enctype="multipart/form-data"`) {
		t.Fatalf("list page: %d\n%s", r.status, page)
	}
	r = get(t, f.url+"/batches/"+failUp.BatchID)
	page = string(r.body)
	if r.status != 200 || !strings.Contains(page, "This batch failed") || !strings.Contains(page, "the header lacks the column") {
		t.Fatalf("failed batch page: %d\n%s", r.status, page)
	}
	if strings.Contains(page, "file://") || strings.Contains(page, eng.Dir) {
		t.Fatal("the page shows a local path")
	}
	if r := get(t, f.url+"/batches/0123456789abcdef0123"); r.status != 404 || !strings.Contains(string(r.body), "there is no batch") {
		t.Fatalf("unknown batch page: %d", r.status)
	}
	if r := get(t, f.url+"/nowhere"); r.status != 404 {
		t.Fatalf("unknown page: %d", r.status)
	}
	// The form redirects to the batch page.
	body, ct := multipartBody(t, "form.csv", []byte("id,name\n1,x\n"))
	r = do(t, "POST", f.url+"/upload", body, map[string]string{"Content-Type": ct})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/batches/") {
		t.Fatalf("form upload: %d %q", r.status, r.header.Get("Location"))
	}
	waitDone(t, f.url, strings.TrimPrefix(r.header.Get("Location"), "/batches/"))
	if l, _ := eng.Ledger.ListBatches(t.Context(), sluice.BatchFilter{}); len(l) != 2 {
		t.Fatalf("%d batches", len(l))
	}
}
