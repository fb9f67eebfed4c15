package console_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/console"
	"github.com/sluicehq/sluice/pkg/gen"
)

// TestBidiNames is issue 11 item 3. The console refuses an upload whose
// name holds a bidi control or another invisible character, saying which
// one; a batch whose file arrived another way (the drop folder, the
// bucket) is shown with the character made visible: on the pages, in the
// API's "file", and in a download's file name. The key stays exact.
func TestBidiNames(t *testing.T) {
	for _, name := range []string{"invoice\u202Egpj.csv", "a\u2066b.csv", "zero\u200Bwidth.csv", "soft\u00ADhyphen.csv", "c1\u0085.csv", "bom\uFEFF.csv"} {
		body, ct := multipartBody(t, name, []byte("uuid\n1\n"))
		eng := newEngine(t, nil, false)
		f := serve(t, eng, console.Options{})
		wantError(t, do(t, "POST", f.url+"/api/uploads", body, map[string]string{"Content-Type": ct}), 400, "rename the file")
		r := do(t, "POST", f.url+"/api/uploads?name="+strings.ReplaceAll(name, "\u0085", "%C2%85"), strings.NewReader("uuid\n1\n"), nil)
		wantError(t, r, 400, "U+")
		if strings.ContainsAny(string(r.body), "\u202E\u2066\u200B\u00AD\u0085\uFEFF") {
			t.Fatalf("the error repeats the character: %s", r.body)
		}
	}

	dir := t.TempDir()
	orders, fin, _, err := gen.WriteFiles(dir, gen.Options{Rows: 50, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	eng := newEngine(t, config.Default(), true)
	if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
		t.Fatal(err)
	}
	f := serve(t, eng, console.Options{})
	spoof := filepath.Join(t.TempDir(), "invoice\u202Egpj.csv")
	content, _ := os.ReadFile(orders)
	os.WriteFile(spoof, content, 0o644)
	sub, err := eng.Submit(t.Context(), spoof) // as the drop folder does
	if err != nil {
		t.Fatal(err)
	}
	v := waitDone(t, f.url, recorded(t, f.url, sub.BatchID))
	if v.File != "invoice<U+202E>gpj.csv" || v.Key != "input/invoice\u202Egpj.csv" {
		t.Fatalf("API file %q key %q", v.File, v.Key)
	}
	for _, page := range []string{"/", "/batches/" + sub.BatchID} {
		r := get(t, f.url+page)
		if r.status != 200 || strings.ContainsRune(string(r.body), '\u202E') || !strings.Contains(string(r.body), "invoice&lt;U&#43;202E&gt;gpj.csv") {
			t.Fatalf("page %s: %d\n%s", page, r.status, r.body)
		}
	}
	// A rejected row's text is shown neutralised on the page, exact in the API.
	bad := filepath.Join(t.TempDir(), "rows.csv")
	lines := strings.SplitAfter(string(content), "\n")
	os.WriteFile(bad, []byte(lines[0]+"not-a-uuid\u202E,"+strings.SplitN(lines[1], ",", 2)[1]), 0o644)
	sub2, err := eng.Submit(t.Context(), bad)
	if err != nil {
		t.Fatal(err)
	}
	if v := waitDone(t, f.url, recorded(t, f.url, sub2.BatchID)); v.RowsRejected != 1 {
		t.Fatalf("rejected %d", v.RowsRejected)
	}
	if r := get(t, f.url+"/batches/"+sub2.BatchID); strings.ContainsRune(string(r.body), '\u202E') || !strings.Contains(string(r.body), "not-a-uuid&lt;U&#43;202E&gt;") {
		t.Fatalf("rejected row on the page:\n%s", r.body)
	}
	if r := get(t, f.url+"/api/batches/"+sub2.BatchID+"/errors"); !strings.Contains(string(r.body), "not-a-uuid\u202e") && !strings.ContainsRune(string(r.body), '\u202E') {
		t.Fatalf("the API changed the rejected row: %s", r.body)
	}

	r := get(t, f.url+"/api/batches/"+sub.BatchID+"/output")
	if cd := r.header.Get("Content-Disposition"); r.status != http.StatusOK || strings.Contains(cd, "%E2%80%AE") || !strings.Contains(cd, "U+202E") {
		t.Fatalf("download: %d Content-Disposition %q", r.status, cd)
	}
}

// recorded waits until the splitter has recorded a batch submitted to the
// engine directly (the console knows only its own uploads before that).
func recorded(t *testing.T, base, id string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for get(t, base+"/api/batches/"+id).status == http.StatusNotFound {
		if time.Now().After(deadline) {
			t.Fatalf("batch %s never recorded", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return id
}
