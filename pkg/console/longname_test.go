package console_test

import (
	"mime"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/console"
	"github.com/sluicehq/sluice/pkg/testenv"
)

// TestUploadAnyNameS3Accepts: a 1,018-byte name (input/ + name = 1,024
// bytes, S3's limit) is accepted, processed, and the download keeps it,
// though no local path element may exceed 255 bytes (issue 10, finding 6).
func TestUploadAnyNameS3Accepts(t *testing.T) {
	orders, fin := testenv.SeedSample(t)
	eng := newEngine(t, nil, false)
	if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
		t.Fatal(err)
	}
	startEngine(t, eng)
	f := serve(t, eng, console.Options{})
	name := strings.Repeat("ü", 507) + ".csv"
	content, err := os.ReadFile(orders)
	if err != nil {
		t.Fatal(err)
	}
	body, ct := multipartBody(t, name, content)
	r := do(t, "POST", f.url+"/api/uploads", body, map[string]string{"Content-Type": ct})
	if r.status != http.StatusCreated {
		t.Fatalf("upload of a %d-byte name: %d %s", len(name), r.status, r.body)
	}
	var res console.UploadResult
	r.json(t, &res)
	v := waitDone(t, f.url, res.BatchID)
	if v.State != "completed" || v.File != name {
		t.Fatalf("batch %+v", v)
	}
	out := get(t, f.url+"/api/batches/"+res.BatchID+"/output")
	_, params, err := mime.ParseMediaType(out.header.Get("Content-Disposition"))
	if out.status != 200 || err != nil || params["filename"] != strings.TrimSuffix(name, ".csv")+".csv" {
		t.Fatalf("download: %d, Content-Disposition %q (%v)", out.status, out.header.Get("Content-Disposition"), err)
	}
}
