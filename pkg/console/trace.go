package console

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// TraceIDPlaceholder is what Options.TraceURL holds where the trace ID goes.
const TraceIDPlaceholder = "{traceId}"

// CheckTraceURL says whether tmpl can be Options.TraceURL: an http or https
// URL holding {traceId}. The callers (`sluice console`, `serve`) check it
// at start, so a typo is an error there rather than a dead link later.
func CheckTraceURL(tmpl string) error {
	if tmpl == "" {
		return nil
	}
	if !strings.Contains(tmpl, TraceIDPlaceholder) {
		return fmt.Errorf("trace URL %q: it must hold %s, where the batch's trace ID goes", tmpl, TraceIDPlaceholder)
	}
	u, err := url.Parse(strings.ReplaceAll(tmpl, TraceIDPlaceholder, "0"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("trace URL " + fmt.Sprintf("%q", tmpl) + ": it must be an http or https URL, such as https://grafana.example/explore?...{traceId}...")
	}
	return nil
}

// traceLink is the trace UI's link for a trace ID, or "" when no URL is
// configured or the ID is not the 32 hex digits of a W3C trace ID (it comes
// from the ledger, and only hex goes into the URL).
func (h *Handler) traceLink(id string) string {
	tmpl := h.d.Options.TraceURL
	if tmpl == "" || len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return ""
	}
	return strings.ReplaceAll(tmpl, TraceIDPlaceholder, id)
}
