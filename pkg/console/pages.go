package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{
		"bytes":   humanBytes,
		"seconds": humanSeconds,
		"pct":     func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) },
		"count":   func(n int) string { return groupDigits(int64(n)) },
		"time":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"iso":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"chunks": func(v BatchView) string {
			if v.TotalChunks < 0 {
				return fmt.Sprintf("%d / ?", v.DoneChunks)
			}
			return fmt.Sprintf("%d / %d", v.DoneChunks, v.TotalChunks)
		},
		"running": func(v BatchView) bool { return !v.Terminal },
		// share is a reason's part of all rejected rows, for its bar.
		"share": func(n, total int) string {
			if total <= 0 {
				return "0%"
			}
			return strconv.FormatFloat(float64(n)*100/float64(total), 'f', 1, 64) + "%"
		},
	}
	out := map[string]*template.Template{}
	for _, name := range []string{"list", "batch", "error"} {
		out[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}

// pageData is what every page template sees.
type pageData struct {
	Base  string // BasePath, in front of every link
	Title string
	Body  any
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name, title string, body any) {
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, "layout", pageData{Base: h.d.Options.BasePath, Title: title, Body: body}); err != nil {
		h.d.Logger.Error("console page failed", "page", name, "err", err)
		http.Error(w, "the page could not be drawn: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type errorPage struct {
	Status  int
	Heading string
	Message string
}

func (h *Handler) pageError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, r, status, "error", http.StatusText(status), errorPage{Status: status, Heading: http.StatusText(status), Message: msg})
}

type listPage struct {
	BatchList
	States    []string
	Feeds     []string // the feed filter's choices; none when there is one feed
	CanUpload bool
	MaxUpload string
	Running   int
	PrevURL   string
}

func (h *Handler) pageList(w http.ResponseWriter, r *http.Request) {
	lq, err := h.parseListQuery(r)
	if err != nil {
		st, msg := h.status(r, err)
		h.pageError(w, r, st, msg)
		return
	}
	bl, err := h.list(r.Context(), lq)
	if err != nil {
		st, msg := h.status(r, err)
		h.pageError(w, r, st, msg)
		return
	}
	p := listPage{BatchList: bl, CanUpload: h.d.Uploader != nil, MaxUpload: humanBytes(h.d.Options.MaxUploadBytes)}
	for _, s := range knownStates {
		p.States = append(p.States, string(s))
	}
	if len(h.d.Options.Feeds) > 1 {
		p.Feeds = append(slices.Clone(h.d.Options.Feeds), noFeed)
	}
	for _, b := range bl.Batches {
		if !b.Terminal {
			p.Running++
		}
	}
	if lq.cursor != nil || lq.page > 1 {
		p.PrevURL = h.link("/")
		if lq.state != "" {
			p.PrevURL += "?state=" + string(lq.state)
		}
	}
	title := "Batches"
	if lq.state != "" {
		title = "Batches: " + string(lq.state)
	}
	h.render(w, r, http.StatusOK, "list", title, p)
}

type batchPage struct {
	B         BatchView
	Rejects   []RejectView
	After     int64 // the rows shown start after this line
	NextAfter int64
	Archive   string // where a failed batch's input was kept
}

func (h *Handler) pageBatch(w http.ResponseWriter, r *http.Request) {
	after := int64(0)
	if s := r.URL.Query().Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			h.pageError(w, r, http.StatusBadRequest, "after must be a line number")
			return
		}
		after = n
	}
	b, _, err := h.batch(r.Context(), r.PathValue("id"))
	if err != nil {
		st, msg := h.status(r, err)
		h.pageError(w, r, st, msg)
		return
	}
	rl, err := h.rejects(r.Context(), b, after, 25)
	if err != nil {
		st, msg := h.status(r, err)
		h.pageError(w, r, st, msg)
		return
	}
	// Rejected rows are the sender's text: on the page, a bidi override in
	// one must not redraw the table around it (the API keeps them exact).
	for i, rj := range rl.Rejects {
		rl.Rejects[i].Raw, rl.Rejects[i].Message = sluice.DisplayText(rj.Raw), sluice.DisplayText(rj.Message)
	}
	p := batchPage{B: h.view(b), Rejects: rl.Rejects, After: after, NextAfter: rl.NextAfter}
	if b.State == sluice.StateFailed && b.Name != "" {
		p.Archive = sluice.DisplayName(pipeline.ArchiveKey(b))
	}
	h.render(w, r, http.StatusOK, "batch", p.B.File, p)
}

// pageUpload takes the upload form and goes to the new batch's page, so
// the form works without JavaScript.
func (h *Handler) pageUpload(w http.ResponseWriter, r *http.Request) {
	_, up, err := h.receive(w, r)
	if err != nil {
		st, msg := h.status(r, err)
		h.pageError(w, r, st, msg)
		return
	}
	to := h.link("/")
	if up.BatchID != "" {
		to = h.link("/batches/%s", up.BatchID)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + string("KMGTPE"[exp]) + "iB"
}

func humanSeconds(s float64) string {
	switch {
	case s < 1:
		return fmt.Sprintf("%.0f ms", s*1000)
	case s < 60:
		return fmt.Sprintf("%.2f s", s)
	case s < 3600:
		return fmt.Sprintf("%dm %02ds", int(s)/60, int(s)%60)
	}
	return fmt.Sprintf("%dh %02dm", int(s)/3600, int(s)%3600/60)
}

// groupDigits writes 10000 as 10,000.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
