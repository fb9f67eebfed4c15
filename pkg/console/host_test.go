package console_test

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/console"
	"github.com/sluicehq/sluice/pkg/gen"
)

// TestHostHeaderRefused is the DNS-rebinding attack of issue 11: a console
// on loopback without a token, reached with the Host header a browser sends
// after attacker.example was made to resolve to 127.0.0.1. Every route must
// refuse it, including the download of a finished output and an upload;
// loopback names and the names given in AllowedHosts still work.
func TestHostHeaderRefused(t *testing.T) {
	dir := t.TempDir()
	orders, fin, _, err := gen.WriteFiles(dir, gen.Options{Rows: 200, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	eng := newEngine(t, config.Default(), true)
	if _, _, err := eng.LoadReference(t.Context(), fin, nil); err != nil {
		t.Fatal(err)
	}
	f := serve(t, eng, console.Options{AllowedHosts: []string{"sluice.example.org"}})
	content, err := os.ReadFile(orders)
	if err != nil {
		t.Fatal(err)
	}
	up := upload(t, f.url, "orders.csv", content)
	if v := waitDone(t, f.url, up.BatchID); v.State != "completed" {
		t.Fatalf("batch %s", v.State)
	}
	id := up.BatchID
	routes := []struct{ method, path string }{
		{"GET", "/"},
		{"GET", "/batches/" + id},
		{"GET", "/static/console.css"},
		{"GET", "/healthz"},
		{"GET", "/api/batches"},
		{"GET", "/api/batches/" + id},
		{"GET", "/api/batches/" + id + "/errors"},
		{"GET", "/api/batches/" + id + "/errors.csv"},
		{"GET", "/api/batches/" + id + "/output"},
		{"HEAD", "/api/batches/" + id + "/output"},
		{"GET", "/api/batches/" + id + "/manifest"},
		{"POST", "/api/uploads?name=rebound.csv"},
		{"POST", "/api/uploads/url?name=rebound.csv"},
		{"POST", "/upload"},
		{"GET", "/api/nowhere"},
	}
	for _, host := range []string{"attacker.example:8080", "attacker.example", "127.0.0.1.attacker.example", "localhost.attacker.example", "10.0.0.1:8080"} {
		for _, rt := range routes {
			var body *strings.Reader
			if rt.method == "POST" {
				body = strings.NewReader(string(content))
			}
			req, err := http.NewRequestWithContext(t.Context(), rt.method, f.url+rt.path, nil)
			if body != nil {
				req, err = http.NewRequestWithContext(t.Context(), rt.method, f.url+rt.path, body)
			}
			if err != nil {
				t.Fatal(err)
			}
			req.Host = host
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusMisdirectedRequest {
				t.Errorf("Host %q %s %s: %d, want 421", host, rt.method, rt.path, res.StatusCode)
			}
		}
	}
	// Nothing the forged uploads sent became a batch.
	if r := get(t, f.url+"/api/batches"); !strings.Contains(string(r.body), `"batches"`) || strings.Contains(string(r.body), "rebound.csv") {
		t.Fatalf("a refused upload was taken: %s", r.body)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", f.url+"/api/batches", nil)
	req.Host = "attacker.example"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	wantError(t, resp{status: res.StatusCode, header: res.Header, body: msg}, 421, "--allow-host")

	port := f.url[strings.LastIndexByte(f.url, ':'):]
	for _, host := range []string{"127.0.0.1" + port, "localhost" + port, "LOCALHOST.", "app.localhost" + port, "[::1]" + port, "sluice.example.org", "Sluice.Example.Org" + port} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", f.url+"/api/batches/"+id+"/output", nil)
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("Host %q: %d, want 200", host, res.StatusCode)
		}
	}
}
