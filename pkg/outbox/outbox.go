// Package outbox is a sluice.Mailer that writes each email as an RFC 5322
// message (.eml) into a folder, where any mail client can open it. One file
// per idempotency key: sending the same email twice leaves one file.
package outbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/multipart"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Outbox writes emails into a directory.
type Outbox struct {
	dir string
	now func() time.Time
}

var _ sluice.Mailer = (*Outbox)(nil)

// New creates the folder if needed.
func New(dir string) (*Outbox, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return &Outbox{dir: abs, now: time.Now}, nil
}

// Dir is the outbox folder.
func (o *Outbox) Dir() string { return o.dir }

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Path is the file an email with this idempotency key is written to.
func (o *Outbox) Path(idempotencyKey string) string {
	name := unsafeName.ReplaceAllString(idempotencyKey, "_")
	if name == "" || len(name) > 100 {
		sum := sha256.Sum256([]byte(idempotencyKey))
		name = hex.EncodeToString(sum[:16])
	}
	return filepath.Join(o.dir, name+".eml")
}

// Send implements sluice.Mailer. The returned ID is the file's path.
func (o *Outbox) Send(ctx context.Context, e sluice.Email) (string, error) {
	if e.From == "" || len(e.To) == 0 {
		return "", sluice.Permanentf("outbox: an email needs a sender and at least one recipient")
	}
	key := e.IdempotencyKey
	if key == "" {
		key = fmt.Sprintf("mail-%d", o.now().UnixNano())
	}
	msg, err := Render(e, o.now(), key)
	if err != nil {
		return "", err
	}
	path := o.Path(key)
	tmp, err := os.CreateTemp(o.dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("outbox: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600; an email is for any local reader.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", fmt.Errorf("outbox: %w", err)
	}
	if _, err := tmp.Write(msg); err != nil {
		tmp.Close()
		return "", fmt.Errorf("outbox: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("outbox: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("outbox: %w", err)
	}
	return path, nil
}

// maxLine is RFC 5322's limit on a line, without its CRLF.
const maxLine = 998

// encodeBody picks a part's transfer encoding so that links survive. Not
// quoted-printable: it soft-wraps lines at 76 characters with "=", which
// breaks every long link copied from the raw .eml. When every line fits
// RFC 5322's 998 octets the text goes as it is (7bit, or 8bit for UTF-8),
// readable and with each link on one line; a longer line (a presigned URL
// with a session token can pass 1,000 characters) makes the part base64,
// which every mail client decodes whole.
func encodeBody(body string) (cte string, out []byte) {
	body = strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\r", "\n")
	lines := strings.Split(body, "\n")
	fits, ascii := true, true
	for _, l := range lines {
		fits = fits && len(l) <= maxLine
		for i := 0; i < len(l); i++ {
			ascii = ascii && l[i] < 0x80
		}
	}
	canonical := strings.Join(lines, "\r\n")
	if !fits {
		enc := base64.StdEncoding.EncodeToString([]byte(canonical))
		var b bytes.Buffer
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
		return "base64", b.Bytes()
	}
	cte = "8bit"
	if ascii {
		cte = "7bit"
	}
	return cte, []byte(canonical)
}

// Render builds the RFC 5322 message: headers, then a multipart/alternative
// body with the text part first and the HTML part second.
func Render(e sluice.Email, date time.Time, id string) ([]byte, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	hdr := func(k, v string) { fmt.Fprintf(&buf, "%s: %s\r\n", k, v) }
	hdr("From", e.From)
	hdr("To", strings.Join(e.To, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", e.Subject))
	hdr("Date", date.UTC().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+unsafeName.ReplaceAllString(id, "_")+"@sluice.local>")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", `multipart/alternative; boundary="`+mw.Boundary()+`"`)
	buf.WriteString("\r\n")
	for _, part := range []struct{ ctype, body string }{
		{"text/plain; charset=utf-8", e.Text},
		{"text/html; charset=utf-8", e.HTML},
	} {
		if part.body == "" {
			continue
		}
		cte, body := encodeBody(part.body)
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.ctype},
			"Content-Transfer-Encoding": {cte},
		})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(body); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
