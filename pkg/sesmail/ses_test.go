package sesmail_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/sesmail"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sluice/sluicetest"
)

func TestMain(m *testing.M) { awstest.Main(m, awstest.SES) }

// recorder remembers the IDs its mailer got back, so that a test reads only
// its own emails from the emulator's shared store.
type recorder struct {
	sluice.Mailer
	mu  sync.Mutex
	ids map[string]bool
}

func (r *recorder) Send(ctx context.Context, e sluice.Email) (string, error) {
	id, err := r.Mailer.Send(ctx, e)
	if err == nil {
		r.mu.Lock()
		r.ids[id] = true
		r.mu.Unlock()
	}
	return id, err
}

// stored is an email as aws-ses-v2-local shows it at GET /store.
type stored struct {
	MessageID   string `json:"messageId"`
	From        string `json:"from"`
	Subject     string `json:"subject"`
	Destination struct {
		To []string `json:"to"`
	} `json:"destination"`
	Body struct {
		Text string `json:"text"`
		HTML string `json:"html"`
	} `json:"body"`
}

func readStore(t *testing.T, endpoint string) []stored {
	t.Helper()
	resp, err := http.Get(endpoint + "/store")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var store struct {
		Emails []stored `json:"emails"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&store); err != nil {
		t.Fatalf("decoding /store: %v", err)
	}
	return store.Emails
}

func TestMailerConformance(t *testing.T) {
	env := awstest.Shared(t)
	if env.External() {
		t.Skip("reading sent mail back needs aws-ses-v2-local's /store")
	}
	sluicetest.TestMailer(t, func(t *testing.T) (sluice.Mailer, func(t *testing.T) []sluicetest.SentEmail) {
		r := &recorder{Mailer: sesmail.New(env.Config(awstest.SES)), ids: map[string]bool{}}
		return r, func(t *testing.T) []sluicetest.SentEmail {
			var out []sluicetest.SentEmail
			for _, e := range readStore(t, env.Endpoint(awstest.SES)) {
				r.mu.Lock()
				mine := r.ids[e.MessageID]
				r.mu.Unlock()
				if mine {
					out = append(out, sluicetest.SentEmail{From: e.From, To: e.Destination.To, Subject: e.Subject, Text: e.Body.Text, HTML: e.Body.HTML})
				}
			}
			return out
		}
	})
}

func TestBadEmailsArePermanent(t *testing.T) {
	m := sesmail.New(awstest.Shared(t).Config(awstest.SES))
	for name, e := range map[string]sluice.Email{
		"no sender":  {To: []string{"a@example.com"}, Subject: "s", Text: "t"},
		"no subject": {From: "f@example.com", To: []string{"a@example.com"}, Text: "t"},
		"no body":    {From: "f@example.com", To: []string{"a@example.com"}, Subject: "s"},
	} {
		if _, err := m.Send(t.Context(), e); !sluice.IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent error", name, err)
		}
	}
}

func TestDefaultSenderAndHTMLOnly(t *testing.T) {
	env := awstest.Shared(t)
	if env.External() {
		t.Skip("reading sent mail back needs aws-ses-v2-local's /store")
	}
	m := sesmail.New(env.Config(awstest.SES), sesmail.WithFrom("sluice@example.com"))
	id, err := m.Send(t.Context(), sluice.Email{To: []string{"ops@example.com"}, Subject: "html only", HTML: "<p>hi</p>"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range readStore(t, env.Endpoint(awstest.SES)) {
		if e.MessageID == id {
			if e.From != "sluice@example.com" || e.Body.HTML != "<p>hi</p>" || e.Body.Text != "" {
				t.Fatalf("stored %+v", e)
			}
			return
		}
	}
	t.Fatalf("email %s not in the store", id)
}
