// Package ses is the sluice.Mailer on Amazon SES, through the SES v2
// SendEmail API with simple (subject, text, HTML) content.
//
// SES does not de-duplicate: Email.IdempotencyKey is not sent. The notifier
// avoids a second email by recording the returned message ID in the ledger
// before it acknowledges its message.
package sesmail

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Options configure a Mailer.
type Options struct {
	// ConfigurationSet names the SES configuration set that receives the
	// sending events (bounces, complaints, deliveries); empty for none.
	ConfigurationSet string
	// From is used when an Email has no From.
	From string
}

// Option changes Options.
type Option func(*Options)

// WithConfigurationSet sets Options.ConfigurationSet.
func WithConfigurationSet(name string) Option { return func(o *Options) { o.ConfigurationSet = name } }

// WithFrom sets Options.From.
func WithFrom(addr string) Option { return func(o *Options) { o.From = addr } }

// Mailer sends email through SES.
type Mailer struct {
	client *sesv2.Client
	opt    Options
}

var _ sluice.Mailer = (*Mailer)(nil)

// New returns a mailer. cfg comes from config.LoadDefaultConfig in the
// services, so AWS_ENDPOINT_URL_SESV2 and the rest of the SDK's
// configuration chain apply.
func New(cfg aws.Config, opts ...Option) *Mailer {
	var o Options
	for _, f := range opts {
		f(&o)
	}
	return &Mailer{client: sesv2.NewFromConfig(cfg), opt: o}
}

func utf8Content(s string) *types.Content {
	return &types.Content{Data: aws.String(s), Charset: aws.String("UTF-8")}
}

// Send implements sluice.Mailer. An email without sender, recipients,
// subject or body is refused here, as permanently bad, before SES sees it:
// SES would refuse most of it too, but not every emulator does.
func (m *Mailer) Send(ctx context.Context, e sluice.Email) (string, error) {
	from := e.From
	if from == "" {
		from = m.opt.From
	}
	switch {
	case from == "":
		return "", sluice.Permanentf("ses: email %q has no sender", e.Subject)
	case len(e.To) == 0:
		return "", sluice.Permanentf("ses: email %q has no recipients", e.Subject)
	case e.Subject == "":
		return "", sluice.Permanentf("ses: email to %v has no subject", e.To)
	case e.Text == "" && e.HTML == "":
		return "", sluice.Permanentf("ses: email %q has no body", e.Subject)
	}
	body := &types.Body{}
	if e.Text != "" {
		body.Text = utf8Content(e.Text)
	}
	if e.HTML != "" {
		body.Html = utf8Content(e.HTML)
	}
	in := &sesv2.SendEmailInput{
		FromEmailAddress: aws.String(from),
		Destination:      &types.Destination{ToAddresses: e.To},
		Content:          &types.EmailContent{Simple: &types.Message{Subject: utf8Content(e.Subject), Body: body}},
	}
	if m.opt.ConfigurationSet != "" {
		in.ConfigurationSetName = aws.String(m.opt.ConfigurationSet)
	}
	out, err := m.client.SendEmail(ctx, in)
	if err != nil {
		return "", fmt.Errorf("ses: sending %q to %v: %w", e.Subject, e.To, err)
	}
	return aws.ToString(out.MessageId), nil
}
