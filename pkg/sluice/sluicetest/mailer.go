package sluicetest

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/sluice"
)

var crlf = strings.NewReplacer("\r\n", "\n")

// SentEmail is what a test can read back of an email that was sent.
type SentEmail struct {
	From    string
	To      []string
	Subject string
	Text    string
	HTML    string
}

// TestMailer runs the Mailer suite. newMailer returns a mailer and a
// function that reads back every email it delivered.
func TestMailer(t *testing.T, newMailer func(t *testing.T) (sluice.Mailer, func(t *testing.T) []SentEmail)) {
	t.Run("SendTextAndHTML", func(t *testing.T) {
		m, sent := newMailer(t)
		e := sluice.Email{
			From: "sluice@example.com", To: []string{"ops@example.com", "finance@example.com"},
			Subject:        "Batch orders.csv: 9 700 rows out — ✓ completed",
			Text:           "Rows in: 10000\nOutput: https://example.com/out.csv?X-Amz-Signature=abc&x=1\n",
			HTML:           "<p>Rows in: <b>10000</b></p>",
			IdempotencyKey: "batch-abc123",
		}
		id, err := m.Send(t.Context(), e)
		if err != nil || id == "" {
			t.Fatalf("Send = %q, %v", id, err)
		}
		got := sent(t)
		if len(got) != 1 {
			t.Fatalf("%d emails delivered, want 1", len(got))
		}
		g := got[0]
		if g.Subject != e.Subject || !strings.Contains(g.From, e.From) || strings.Join(g.To, ",") != strings.Join(e.To, ",") {
			t.Fatalf("delivered %+v, want subject %q from %q to %v", g, e.Subject, e.From, e.To)
		}
		// Mail is CRLF on the wire; compare lines, not line endings.
		if crlf.Replace(strings.TrimSpace(g.Text)) != strings.TrimSpace(e.Text) || !strings.Contains(g.HTML, "<b>10000</b>") {
			t.Fatalf("bodies: text %q html %q", g.Text, g.HTML)
		}
	})
	t.Run("NoRecipients", func(t *testing.T) {
		m, _ := newMailer(t)
		if _, err := m.Send(t.Context(), sluice.Email{From: "a@example.com", Subject: "x", Text: "x"}); err == nil {
			t.Fatal("an email without recipients was sent")
		}
	})
}
