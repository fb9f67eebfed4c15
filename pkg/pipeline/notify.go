package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"strings"
	"text/template"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// Notifier sends one email per batch.
type Notifier struct{ *Deps }

// Handle implements the notify stage for one batch-ready message.
func (n Notifier) Handle(ctx context.Context, msg sluice.Message) error {
	var br sluice.BatchReady
	if err := sluice.Decode(msg.Body, &br); err != nil {
		return err
	}
	return n.Notify(ctx, br.BatchID)
}

// Notify emails the batch's outcome once and marks it completed. The mail
// is keyed by batch, so a mailer that de-duplicates (the outbox) sends it
// once whatever happens; on SES a crash between sending and recording can
// send it again (see docs/exactly-once.md).
func (n Notifier) Notify(ctx context.Context, id string) error {
	b, err := n.Ledger.GetBatch(ctx, id)
	if isNotFound(err) {
		return sluice.PermanentReason(sluice.ReasonUnknownBatch, fmt.Errorf("notify message for batch %q, which does not exist", id))
	}
	if err != nil {
		return err
	}
	if b.EmailID != "" || b.State == sluice.StateCompleted {
		batchLog(n.log(), id).InfoContext(ctx, "batch already notified; ignored", "email", b.EmailID)
		return nil
	}
	if b.State != sluice.StateNotifying && b.State != sluice.StateFailed {
		return sluice.PermanentReason(sluice.ReasonBadState, fmt.Errorf("notify message for batch %q in state %s", id, b.State))
	}
	// The feed's mail settings; a batch no feed claimed (or whose feed
	// was since removed) is told with the top-level ones.
	if fd, err := n.forFeed(b.Feed); err == nil {
		n = Notifier{fd}
	} else if !errors.Is(err, config.ErrUnknownFeed) {
		return err
	}
	now := n.now()
	e, err := n.compose(ctx, b, now)
	if err != nil {
		return err
	}
	mailID, err := n.Mailer.Send(ctx, e)
	if err != nil {
		return fmt.Errorf("sending the email: %w", err)
	}
	if err := n.fault(PointNotifyAfterSend); err != nil {
		return err
	}
	_, err = n.Ledger.UpdateBatch(ctx, id, sluice.BatchUpdate{State: sluice.StateCompleted, EmailID: mailID, NotifiedAt: now})
	if err == nil {
		n.batchEnded(ctx, b, now)
		n.rec().BatchEnded(b.State.Final(), now.Sub(b.CreatedAt))
		batchLog(n.log(), id).InfoContext(ctx, "notified", "state", b.State, "email", mailID)
	}
	return err
}

// EmailView is what the email templates see.
type EmailView struct {
	Batch       sluice.Batch
	Failed      bool
	OutputLink  string
	ErrorsLink  string
	LinkExpires string // empty when the links never expire
	Reasons     []sluice.ReasonCount
	Seconds     string
	Archived    bool   // the input is kept under input_archive/
	ArchivedAt  string // where: a file path locally, an s3:// URI on AWS
	Dominated   string // set when most rows were rejected: says how many
}

func (n Notifier) compose(ctx context.Context, b sluice.Batch, now time.Time) (sluice.Email, error) {
	v := EmailView{Batch: b, Failed: b.State == sluice.StateFailed, Reasons: b.TopReasons(5)}
	// The name and reason are shown, in the subject too: no bidi override
	// or invisible character may disguise the file (sluice.DisplayName).
	v.Batch.Name, v.Batch.Reason = sluice.DisplayName(b.Name), sluice.DisplayText(b.Reason)
	v.Seconds = fmt.Sprintf("%.1f s", Durations(b, now)["total"])
	if v.Failed {
		_, err := n.Blobs.Stat(ctx, ArchiveKey(b))
		v.Archived = err == nil
		v.ArchivedAt = sluice.DisplayName(Where(n.Blobs, ArchiveKey(b)))
	}
	if !v.Failed || b.ErrorsKey != "" { // a batch failed for its reject rate has its report
		ttl := n.Config.Mail.LinkTTL.Duration
		var exp time.Time
		var err error
		if !v.Failed {
			if v.OutputLink, exp, err = n.link(ctx, b, b.OutputKey, ttl); err != nil {
				return sluice.Email{}, fmt.Errorf("link to the output: %w", err)
			}
		}
		if v.ErrorsLink, exp, err = n.link(ctx, b, b.ErrorsKey, ttl); err != nil {
			return sluice.Email{}, fmt.Errorf("link to the error report: %w", err)
		}
		if !exp.IsZero() {
			v.LinkExpires = exp.UTC().Format("2006-01-02 15:04 MST")
		}
	}
	subject := fmt.Sprintf("Sluice: %s processed — %d rows out, %d rejected", v.Batch.Name, b.RowsOut, b.RowsRejected)
	if RejectsDominate(b) {
		v.Dominated = fmt.Sprintf("%s of the rows were rejected", percent(RejectRate(b)))
		subject = fmt.Sprintf("Sluice: %s processed, MOST ROWS REJECTED — %d rows out, %d rejected", v.Batch.Name, b.RowsOut, b.RowsRejected)
	}
	if v.Failed {
		subject = fmt.Sprintf("Sluice: %s failed — %s", v.Batch.Name, firstLine(v.Batch.Reason))
	}
	if b.Feed != "" && b.Feed != config.DefaultFeed {
		// Recipients of several feeds tell them apart in the inbox; the
		// one default feed keeps the subject it always had.
		subject = strings.Replace(subject, "Sluice:", "Sluice ["+b.Feed+"]:", 1)
	}
	var text, html bytes.Buffer
	if err := textTmpl.Execute(&text, v); err != nil {
		return sluice.Email{}, err
	}
	if err := htmlTmpl.Execute(&html, v); err != nil {
		return sluice.Email{}, err
	}
	return sluice.Email{
		From: n.Config.Mail.From, To: n.Config.Mail.To, Subject: subject,
		Text: text.String(), HTML: html.String(), IdempotencyKey: "sluice-batch-" + b.ID,
	}, nil
}

// link is a link to one of the batch's outputs that downloads under the
// input's name where the store can say so (S3: Content-Disposition).
func (n Notifier) link(ctx context.Context, b sluice.Batch, key string, ttl time.Duration) (string, time.Time, error) {
	if la, ok := n.Blobs.(interface {
		LinkAs(ctx context.Context, key, filename string, ttl time.Duration) (string, time.Time, error)
	}); ok {
		return la.LinkAs(ctx, key, DownloadName(b, key), ttl)
	}
	return n.Blobs.Link(ctx, key, ttl)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

var textTmpl = template.Must(template.New("text").Parse(`{{with .Batch}}Batch {{.ID}} — {{.Name}}
{{if .Feed}}Feed: {{.Feed}}
{{end}}{{end}}{{if .Failed}}
The file could not be processed: {{.Batch.Reason}}

{{if .Archived}}Nothing was lost: the file is kept at
  {{.ArchivedAt}}
Fix it and upload it again.
{{else}}The file is no longer in the bucket, so there was nothing to keep. Upload it again.
{{end}}{{if .ErrorsLink}}Error report: {{.ErrorsLink}}
{{if .LinkExpires}}This link stops working at {{.LinkExpires}}.
{{end}}{{end}}{{else}}{{if .Dominated}}
Warning: {{.Dominated}}. Check the error report before using the output.
{{end}}
Rows in:       {{.Batch.RowsIn}}
Rows out:      {{.Batch.RowsOut}}
Rows rejected: {{.Batch.RowsRejected}}
{{if .Reasons}}Top rejection reasons:
{{range .Reasons}}  {{.Rule}}: {{.Count}}
{{end}}{{end}}Duration:      {{.Seconds}}

Output:       {{.OutputLink}}
Error report: {{.ErrorsLink}}
{{if .LinkExpires}}These links stop working at {{.LinkExpires}}.
{{end}}{{end}}`))

// The links are ours (presigned S3 or local file URLs), so they may keep
// their scheme; html/template would blank a file: URL otherwise.
var htmlTmpl = htmltemplate.Must(htmltemplate.New("html").Funcs(htmltemplate.FuncMap{
	"link": func(s string) htmltemplate.URL { return htmltemplate.URL(s) },
}).Parse(`<!doctype html>
<html><body style="font-family:sans-serif">
<h2>{{.Batch.Name}}{{if .Failed}} failed{{else}} processed{{end}}</h2>
<p>Batch <code>{{.Batch.ID}}</code>{{if .Batch.Feed}} · feed <b>{{.Batch.Feed}}</b>{{end}}</p>
{{if .Failed}}<p><b>The file could not be processed:</b> {{.Batch.Reason}}</p>
{{if .Archived}}<p>Nothing was lost: the file is kept at <code>{{.ArchivedAt}}</code>. Fix it and upload it again.</p>
{{else}}<p>The file is no longer in the bucket, so there was nothing to keep. Upload it again.</p>{{end}}
{{if .ErrorsLink}}<p><a href="{{link .ErrorsLink}}">Download the error report</a></p>{{end}}
{{else}}{{if .Dominated}}<p><b>Warning: {{.Dominated}}.</b> Check the error report before using the output.</p>{{end}}
<table>
<tr><td>Rows in</td><td><b>{{.Batch.RowsIn}}</b></td></tr>
<tr><td>Rows out</td><td><b>{{.Batch.RowsOut}}</b></td></tr>
<tr><td>Rows rejected</td><td><b>{{.Batch.RowsRejected}}</b></td></tr>
<tr><td>Duration</td><td>{{.Seconds}}</td></tr>
</table>
{{if .Reasons}}<p>Top rejection reasons:</p><ul>{{range .Reasons}}<li>{{.Rule}}: {{.Count}}</li>{{end}}</ul>{{end}}
<p><a href="{{link .OutputLink}}">Download the output</a> · <a href="{{link .ErrorsLink}}">Download the error report</a></p>
{{if .LinkExpires}}<p><small>These links stop working at {{.LinkExpires}}.</small></p>{{end}}
{{end}}</body></html>
`))
