package outbox_test

import (
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/outbox"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sluice/sluicetest"
)

// Parse reads an .eml file with the standard library's RFC 5322 and MIME
// readers, independent of the code that wrote it.
func parse(t *testing.T, path string) sluicetest.SentEmail {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msg, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatalf("%s is not RFC 5322: %v", path, err)
	}
	var dec mime.WordDecoder
	subj, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	to, err := msg.Header.AddressList("To")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Fatalf("Date header: %v", err)
	}
	e := sluicetest.SentEmail{From: msg.Header.Get("From"), Subject: subj}
	for _, a := range to {
		e.To = append(e.To, a.Address)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q: %v", mt, err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var body []byte
		switch p.Header.Get("Content-Transfer-Encoding") {
		case "quoted-printable":
			body, err = io.ReadAll(quotedprintable.NewReader(p))
		case "base64":
			body, err = io.ReadAll(base64.NewDecoder(base64.StdEncoding, p))
		default:
			body, err = io.ReadAll(p)
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			e.Text = string(body)
		case "text/html":
			e.HTML = string(body)
		}
	}
	return e
}

func TestConformance(t *testing.T) {
	sluicetest.TestMailer(t, func(t *testing.T) (sluice.Mailer, func(t *testing.T) []sluicetest.SentEmail) {
		o, err := outbox.New(filepath.Join(t.TempDir(), "outbox"))
		if err != nil {
			t.Fatal(err)
		}
		return o, func(t *testing.T) []sluicetest.SentEmail {
			files, _ := filepath.Glob(filepath.Join(o.Dir(), "*.eml"))
			var out []sluicetest.SentEmail
			for _, f := range files {
				out = append(out, parse(t, f))
			}
			return out
		}
	})
}

func TestSameKeyOneFile(t *testing.T) {
	o, err := outbox.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := sluice.Email{From: "a@example.com", To: []string{"b@example.com"}, Subject: "s", Text: strings.Repeat("long line ", 30), IdempotencyKey: "batch/1"}
	for range 3 {
		if _, err := o.Send(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(o.Dir(), "*"))
	if len(files) != 1 {
		t.Fatalf("%d files for one idempotency key: %v", len(files), files)
	}
	if got := parse(t, files[0]); got.Text != e.Text {
		t.Fatalf("text %q", got.Text)
	}
}
