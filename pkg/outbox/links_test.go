package outbox_test

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/outbox"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// presigned is a URL shaped like an S3 presigned GET: a long query with a
// signature and, for temporary credentials, a session token.
func presigned(key string, tokenLen int) string {
	q := url.Values{}
	q.Set("X-Amz-Algorithm", "AWS4-HMAC-SHA256")
	q.Set("X-Amz-Credential", "ASIAEXAMPLEEXAMPLE12/20261129/eu-west-1/s3/aws4_request")
	q.Set("X-Amz-Date", "20261129T010203Z")
	q.Set("X-Amz-Expires", "604800")
	q.Set("X-Amz-Security-Token", strings.Repeat("IQoJb3JpZ2luX2VjE+/=", tokenLen/20))
	q.Set("X-Amz-SignedHeaders", "host")
	q.Set("X-Amz-Signature", strings.Repeat("0123456789abcdef", 4))
	return "https://sluice-bucket.s3.eu-west-1.amazonaws.com/" + key + "?" + q.Encode()
}

var (
	textURL = regexp.MustCompile(`(?:https?|file)://[^\s<>"]+`)
	hrefURL = regexp.MustCompile(`href="([^"]+)"`)
)

// TestLinksSurvive is issue 11 item 11: every link in the decoded text and
// HTML of the .eml is exactly the one that was signed, and where a link
// fits on a line it stands whole in the raw file, so copying it from there
// works too. No line of the file passes RFC 5322's 998 octets.
func TestLinksSurvive(t *testing.T) {
	cases := map[string][]string{
		"short token":   {presigned("output/orders%C3%A9.csv", 400), presigned("output/orders.errors.csv", 400)},
		"long token":    {presigned("output/orders.csv", 1200), presigned("output/orders.errors.csv", 1200)},
		"local file":    {"file:///tmp/data/bucket/output/r%C3%A9sum%C3%A9%20final.csv", "file:///tmp/data/bucket/output/r.errors.csv"},
		"signed, short": {"http://127.0.0.1:4566/b/output/x.csv?X-Amz-Signature=" + strings.Repeat("f", 64)},
	}
	for name, links := range cases {
		t.Run(name, func(t *testing.T) {
			var text, html strings.Builder
			text.WriteString("Batch 0123 — résumé.csv\n\n")
			html.WriteString("<!doctype html>\n<html><body><p>Batch <code>0123</code> — résumé.csv</p>\n")
			for i, l := range links {
				text.WriteString("Link " + string(rune('A'+i)) + ":       " + l + "\n")
				html.WriteString(`<p><a href="` + strings.ReplaceAll(l, "&", "&amp;") + `">Download ` + string(rune('A'+i)) + "</a></p>\n")
			}
			html.WriteString("</body></html>\n")
			o, err := outbox.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			path, err := o.Send(t.Context(), sluice.Email{From: "sluice@example.com", To: []string{"ops@example.com"},
				Subject: "Sluice: résumé.csv processed", Text: text.String(), HTML: html.String(), IdempotencyKey: "sluice-batch-0123"})
			if err != nil {
				t.Fatal(err)
			}
			got := parse(t, path)
			if found := textURL.FindAllString(got.Text, -1); !equal(found, links) {
				t.Errorf("links in the decoded text:\n%q\nwant\n%q", found, links)
			}
			var hrefs []string
			for _, m := range hrefURL.FindAllStringSubmatch(got.HTML, -1) {
				hrefs = append(hrefs, strings.ReplaceAll(m[1], "&amp;", "&"))
			}
			if !equal(hrefs, links) {
				t.Errorf("links in the decoded HTML:\n%q\nwant\n%q", hrefs, links)
			}
			if !strings.Contains(got.Text, "résumé.csv") || got.Subject != "Sluice: résumé.csv processed" {
				t.Errorf("text %q subject %q", got.Text, got.Subject)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for i, line := range bytes.Split(raw, []byte("\r\n")) {
				if len(line) > 998 {
					t.Errorf("line %d of the .eml is %d octets long", i+1, len(line))
				}
			}
			for _, l := range links {
				if len("Link A:       "+l) <= 998 && !bytes.Contains(raw, []byte(l)) {
					t.Errorf("the raw .eml does not hold %s whole", l)
				}
			}
			if filepath.Ext(path) != ".eml" {
				t.Fatalf("path %s", path)
			}
		})
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

// TestEmailIsReadable: the .eml is 0644, not os.CreateTemp's 0600.
func TestEmailIsReadable(t *testing.T) {
	o, err := outbox.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path, err := o.Send(t.Context(), sluice.Email{From: "a@example.com", To: []string{"b@example.com"}, Subject: "s", Text: "t", IdempotencyKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v %v", st.Mode().Perm(), err)
	}
}
