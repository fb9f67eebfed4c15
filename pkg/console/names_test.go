package console_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	v := waitDone(t, f.url, sub.BatchID)
	if v.File != "invoice<U+202E>gpj.csv" || v.Key != "input/invoice\u202Egpj.csv" {
		t.Fatalf("API file %q key %q", v.File, v.Key)
	}
	for _, page := range []string{"/", "/batches/" + sub.BatchID} {
		r := get(t, f.url+page)
		if r.status != 200 || strings.ContainsRune(string(r.body), '\u202E') || !strings.Contains(string(r.body), "invoice&lt;U&#43;202E&gt;gpj.csv") {
			t.Fatalf("page %s: %d\n%s", page, r.status, r.body)
		}
	}
	r := get(t, f.url+"/api/batches/"+sub.BatchID+"/output")
	if cd := r.header.Get("Content-Disposition"); r.status != http.StatusOK || strings.Contains(cd, "%E2%80%AE") || !strings.Contains(cd, "U+202E") {
		t.Fatalf("download: %d Content-Disposition %q", r.status, cd)
	}
}
