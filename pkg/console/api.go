package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// StateQueued is the state the console shows for an upload it accepted
// whose batch the splitter has not recorded yet. It is not a ledger state.
const StateQueued = "queued"

// BatchView is a batch as the API returns it. The JSON names are stable.
type BatchView struct {
	ID       string `json:"batchId"`
	Feed     string `json:"feed"` // the feed the file was routed to; "" when none claimed it
	File     string `json:"file"` // the input's file name, for display (sluice.DisplayName)
	Key      string `json:"key"`  // the input object, under input/
	Size     int64  `json:"size"`
	State    string `json:"state"` // a sluice.State, or "queued"
	Terminal bool   `json:"terminal"`
	// Reason says, for a person, why a failed batch failed.
	Reason      string  `json:"reason,omitempty"`
	DoneChunks  int     `json:"doneChunks"`
	TotalChunks int     `json:"totalChunks"` // -1 while the split goes on
	Progress    float64 `json:"progress"`    // 0 to 1: chunks done over total
	RowsIn      int     `json:"rowsIn"`
	RowsOut     int     `json:"rowsOut"`
	// RowsRejected counts rejected rows; TopReasons says by which rule.
	RowsRejected int                  `json:"rowsRejected"`
	TopReasons   []sluice.ReasonCount `json:"topReasons"`
	// Timings are pipeline.Durations in seconds: split, process (from the
	// upload to the last chunk), merge, notify, total.
	Timings map[string]float64 `json:"timings"`
	Stages  []StageView        `json:"stages"`

	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	SplitAt     time.Time `json:"splitAt,omitzero"`
	ProcessedAt time.Time `json:"processedAt,omitzero"`
	MergedAt    time.Time `json:"mergedAt,omitzero"`
	NotifiedAt  time.Time `json:"notifiedAt,omitzero"`

	Links Links `json:"links"`
	// TraceID links the page to the batch's trace (see pkg/tracing).
	TraceID string `json:"traceId,omitempty"`
	// Deliveries are the batch's sinks: pending, delivered or
	// delivery_failed with the reason (absent when it delivers nowhere).
	Deliveries []DeliveryView `json:"deliveries,omitempty"`
	// DeliverySummary is the deliveries in a few words for the list
	// ("2/2 delivered", "1 failed"); absent when it delivers nowhere.
	DeliverySummary string `json:"deliverySummary,omitempty"`
}

// DeliveryView is one sink's delivery of the batch.
type DeliveryView struct {
	Sink     string    `json:"sink"`
	Type     string    `json:"type"`
	State    string    `json:"state"`
	Attempts int       `json:"attempts"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at,omitzero"`
}

// StageView is one step of a batch's timeline.
type StageView struct {
	Name string `json:"name"` // split, process, merge, notify
	// Status is done, running, pending, failed or skipped.
	Status  string  `json:"status"`
	Seconds float64 `json:"seconds,omitempty"` // so far, while running
}

// Links are the console URLs for a batch; a download link is present only
// once its object exists.
type Links struct {
	Self      string `json:"self"`
	Page      string `json:"page"`
	Errors    string `json:"errors"`
	ErrorsCSV string `json:"errorsCsv,omitempty"`
	Output    string `json:"output,omitempty"`
	Manifest  string `json:"manifest,omitempty"`
	// Trace opens the batch's trace in the trace UI (Options.TraceURL).
	Trace string `json:"trace,omitempty"`
}

// RejectView is one rejected row.
type RejectView struct {
	Line    int64  `json:"line"` // where the row starts in the input (the header is line 1)
	Chunk   int    `json:"chunk"`
	Column  string `json:"column,omitempty"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
	Raw     string `json:"raw"` // the row as it stood in the input
}

// BatchList is a page of batches, newest first.
type BatchList struct {
	Batches []BatchView `json:"batches"`
	State   string      `json:"state,omitempty"`
	Feed    string      `json:"feed,omitempty"` // the ?feed= filter
	Limit   int         `json:"limit"`
	Page    int         `json:"page,omitempty"`
	// NextCursor fetches the next page with ?cursor=; empty on the last page.
	NextCursor string `json:"nextCursor,omitempty"`
	// NextPage is set for ?page= requests that have a next page.
	NextPage int `json:"nextPage,omitempty"`
}

// RejectList is a page of a batch's rejected rows, in line order.
type RejectList struct {
	BatchID      string       `json:"batchId"`
	RowsRejected int          `json:"rowsRejected"`
	Rejects      []RejectView `json:"rejects"`
	// NextAfter fetches the next page with ?after=; 0 on the last page.
	NextAfter int64 `json:"nextAfter,omitempty"`
}

// apiError is the body of every API error.
type apiError struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// httpError is an error with the status to answer it with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, apiError{Error: fmt.Sprintf(format, args...), Status: status})
}

// status maps an error to the HTTP status and message to answer it with.
func (h *Handler) status(r *http.Request, err error) (int, string) {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.status, he.msg
	case errors.As(err, &mbe), errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("the file is larger than the upload limit of %s", humanBytes(h.d.Options.MaxUploadBytes))
	case errors.Is(err, ErrBusy):
		return http.StatusConflict, err.Error()
	case errors.Is(err, sluice.ErrInvalidKey):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, sluice.ErrNotFound):
		return http.StatusNotFound, err.Error()
	}
	h.d.Logger.Error("console request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return http.StatusInternalServerError, "internal error: " + err.Error()
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	st, msg := h.status(r, err)
	writeError(w, st, "%s", msg)
}

var batchIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// batch finds the batch a request names. A batch this console accepted but
// the splitter has not recorded yet comes back as queued, with pending set.
func (h *Handler) batch(ctx context.Context, id string) (b sluice.Batch, pending bool, err error) {
	if !batchIDRe.MatchString(id) {
		return b, false, errorf(http.StatusBadRequest, "%q is not a batch ID", id)
	}
	b, err = h.d.Ledger.GetBatch(ctx, id)
	if errors.Is(err, sluice.ErrNotFound) {
		if p, ok := h.pendingBatch(id); ok {
			return sluice.Batch{ID: id, Name: p.name, Key: p.key, State: StateQueued, TotalChunks: -1, CreatedAt: p.at, UpdatedAt: p.at}, true, nil
		}
		return b, false, errorf(http.StatusNotFound, "there is no batch %s", id)
	}
	if err == nil {
		h.forget(id)
	}
	return b, false, err
}

func (h *Handler) link(format string, args ...any) string {
	return h.d.Options.BasePath + fmt.Sprintf(format, args...)
}

// view turns a batch into what the API and the pages show.
func (h *Handler) view(b sluice.Batch) BatchView {
	now := h.d.Now()
	if b.State.Terminal() {
		// A finished batch's clock stopped when it last changed.
		now = b.UpdatedAt
		if !b.NotifiedAt.IsZero() {
			now = b.NotifiedAt
		}
	}
	v := BatchView{
		ID: b.ID, TraceID: b.TraceID, Feed: b.Feed, File: b.Name, Key: b.Key, Size: b.Size, State: string(b.State), Terminal: b.State.Terminal(), Reason: b.Reason,
		DoneChunks: b.DoneChunks, TotalChunks: b.TotalChunks,
		RowsIn: b.RowsIn, RowsOut: b.RowsOut, RowsRejected: b.RowsRejected, TopReasons: b.TopReasons(5),
		Timings:   pipeline.Durations(b, now),
		CreatedAt: b.CreatedAt, UpdatedAt: b.UpdatedAt,
		SplitAt: b.SplitAt, ProcessedAt: b.ProcessAt, MergedAt: b.MergedAt, NotifiedAt: b.NotifiedAt,
		Links: Links{
			Self:   h.link("/api/batches/%s", b.ID),
			Page:   h.link("/batches/%s", b.ID),
			Errors: h.link("/api/batches/%s/errors", b.ID),
			Trace:  h.traceLink(b.TraceID),
		},
	}
	for _, d := range b.Deliveries {
		// The reason quotes a partner's answer: shown as any reason is.
		v.Deliveries = append(v.Deliveries, DeliveryView{Sink: d.Sink, Type: d.Type, State: string(d.State),
			Attempts: d.Attempts, Reason: sluice.DisplayText(d.Reason), At: d.At})
	}
	v.DeliverySummary = b.DeliverySummary()
	if v.File == "" {
		v.File = path.Base(b.Key)
	}
	// File and Reason are for showing; Key stays exact, it names the object.
	v.File, v.Reason = sluice.DisplayName(v.File), sluice.DisplayText(v.Reason)
	if b.State == StateQueued {
		v.Timings = map[string]float64{}
	}
	switch {
	case b.State == sluice.StateCompleted || b.State == sluice.StateNotifying || b.State == sluice.StateMerging:
		v.Progress = 1
	case b.TotalChunks > 0:
		v.Progress = min(1, float64(b.DoneChunks)/float64(b.TotalChunks))
	}
	if b.ErrorsKey != "" {
		v.Links.ErrorsCSV = h.link("/api/batches/%s/errors.csv", b.ID)
	}
	if b.OutputKey != "" {
		v.Links.Output = h.link("/api/batches/%s/output", b.ID)
	}
	if b.ManifestKey != "" {
		v.Links.Manifest = h.link("/api/batches/%s/manifest", b.ID)
	}
	v.Stages = stages(b, now)
	return v
}

// stages lays out the timeline. Workers start while the split goes on, so
// "process" may run alongside "split"; its time counts from the upload.
func stages(b sluice.Batch, now time.Time) []StageView {
	type st struct {
		name       string
		state      sluice.State
		start, end time.Time
	}
	all := []st{
		{"split", sluice.StateSplitting, b.CreatedAt, b.SplitAt},
		{"process", sluice.StateProcessing, b.CreatedAt, b.ProcessAt},
		{"merge", sluice.StateMerging, b.ProcessAt, b.MergedAt},
		{"notify", sluice.StateNotifying, b.MergedAt, b.NotifiedAt},
	}
	out := make([]StageView, len(all))
	failedShown := false
	for i, s := range all {
		v := StageView{Name: s.name, Status: "pending"}
		switch {
		case !s.end.IsZero():
			v.Status = "done"
			if !s.start.IsZero() {
				v.Seconds = s.end.Sub(s.start).Seconds()
			}
		case b.State == sluice.StateFailed && s.name == "notify":
			v.Status = "pending" // the failure email is still to come
		case b.State == sluice.StateFailed && !failedShown:
			v.Status, failedShown = "failed", true
		case b.State == sluice.StateFailed:
			v.Status = "skipped"
		case b.State == s.state || s.name == "process" && b.State == sluice.StateSplitting && b.DoneChunks > 0:
			v.Status = "running"
			if !s.start.IsZero() {
				v.Seconds = now.Sub(s.start).Seconds()
			}
		}
		out[i] = v
	}
	return out
}

func rejectViews(rs []sluice.RowError) []RejectView {
	out := make([]RejectView, len(rs))
	for i, r := range rs {
		out[i] = RejectView{Line: r.Line, Chunk: r.Chunk, Column: r.Column, Rule: r.Rule, Message: r.Message, Raw: r.Raw}
	}
	return out
}

// listQuery is a parsed ?state=&limit=&cursor=&page=.
type listQuery struct {
	state  sluice.State
	feed   string // "": any; "none": batches no feed claimed
	limit  int
	page   int
	cursor *cursor
}

// cursor is the position after the last batch of a page, in the ledger's
// order: newest first, then by ID.
type cursor struct {
	created time.Time
	id      string
}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.created.UnixNano(), 10) + ":" + c.id))
}

func parseCursor(s string) (*cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	ns, id, ok := strings.Cut(string(raw), ":")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || !batchIDRe.MatchString(id) {
		return nil, errors.New("malformed")
	}
	return &cursor{created: time.Unix(0, n).UTC(), id: id}, nil
}

// after reports whether b comes after the cursor in list order.
func (c *cursor) after(b sluice.Batch) bool {
	if !b.CreatedAt.Equal(c.created) {
		return b.CreatedAt.Before(c.created)
	}
	return b.ID > c.id
}

var knownStates = []sluice.State{sluice.StateSplitting, sluice.StateProcessing, sluice.StateMerging, sluice.StateNotifying, sluice.StateCompleted, sluice.StateFailed}

const (
	defaultListLimit = 20
	maxListLimit     = 200
)

// noFeed is the ?feed= value of batches whose object no feed claimed.
const noFeed = "none"

func (h *Handler) parseListQuery(r *http.Request) (listQuery, error) {
	lq, err := parseListQuery(r)
	if err != nil {
		return lq, err
	}
	f := r.URL.Query().Get("feed")
	switch {
	case f == "" || f == noFeed:
	case len(h.d.Options.Feeds) > 0 && !slices.Contains(h.d.Options.Feeds, f):
		return lq, errorf(http.StatusBadRequest, "unknown feed %q (one of %s, or none)", f, strings.Join(h.d.Options.Feeds, ", "))
	case config.ValidName("feed", f) != nil:
		return lq, errorf(http.StatusBadRequest, "%v", config.ValidName("feed", f))
	}
	lq.feed = f
	return lq, nil
}

// inFeed reports whether b passes the ?feed= filter.
func (lq listQuery) inFeed(b sluice.Batch) bool {
	return lq.feed == "" || b.Feed == lq.feed || lq.feed == noFeed && b.Feed == ""
}

func parseListQuery(r *http.Request) (listQuery, error) {
	q := r.URL.Query()
	lq := listQuery{limit: defaultListLimit}
	if s := q.Get("state"); s != "" {
		ok := false
		for _, k := range knownStates {
			ok = ok || string(k) == s
		}
		if !ok {
			return lq, errorf(http.StatusBadRequest, "unknown state %q (one of splitting, processing, merging, notifying, completed, failed)", s)
		}
		lq.state = sluice.State(s)
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			return lq, errorf(http.StatusBadRequest, "limit must be a number from 1 to %d", maxListLimit)
		}
		lq.limit = n
	}
	if s := q.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1_000_000 {
			return lq, errorf(http.StatusBadRequest, "page must be a number from 1")
		}
		lq.page = n
	}
	if s := q.Get("cursor"); s != "" {
		if lq.page > 0 {
			return lq, errorf(http.StatusBadRequest, "use either cursor or page, not both")
		}
		c, err := parseCursor(s)
		if err != nil {
			return lq, errorf(http.StatusBadRequest, "the cursor is not one this API gave out")
		}
		lq.cursor = c
	}
	return lq, nil
}

// list reads one page of batches. The Ledger port lists newest first with
// a limit but no offset, so a page further down asks for more rows, growing
// the request until the page is full or the ledger runs out.
func (h *Handler) list(ctx context.Context, lq listQuery) (BatchList, error) {
	skip := 0
	if lq.page > 0 {
		skip = (lq.page - 1) * lq.limit
	}
	need := skip + lq.limit + 1
	fetch := need
	if lq.cursor != nil || lq.feed != "" {
		fetch = 2 * need
	}
	var rest []sluice.Batch
	for {
		bs, err := h.d.Ledger.ListBatches(ctx, sluice.BatchFilter{State: lq.state, Limit: fetch})
		if err != nil {
			return BatchList{}, err
		}
		rest = bs
		if lq.cursor != nil || lq.feed != "" {
			// Filtered here: the Ledger port filters by state only.
			rest = rest[:0:0]
			for _, b := range bs {
				if (lq.cursor == nil || lq.cursor.after(b)) && lq.inFeed(b) {
					rest = append(rest, b)
				}
			}
		}
		if len(rest) >= need || len(bs) < fetch {
			break
		}
		fetch *= 4
	}
	rest = rest[min(skip, len(rest)):]
	out := BatchList{Batches: []BatchView{}, State: string(lq.state), Feed: lq.feed, Limit: lq.limit, Page: lq.page}
	more := len(rest) > lq.limit
	if more {
		rest = rest[:lq.limit]
	}
	for _, b := range rest {
		out.Batches = append(out.Batches, h.view(b))
	}
	if more {
		last := rest[len(rest)-1]
		if lq.page > 0 {
			out.NextPage = lq.page + 1
		} else {
			out.NextCursor = cursor{created: last.CreatedAt, id: last.ID}.String()
		}
	}
	return out, nil
}

func (h *Handler) apiList(w http.ResponseWriter, r *http.Request) {
	lq, err := h.parseListQuery(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out, err := h.list(r.Context(), lq)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) apiBatch(w http.ResponseWriter, r *http.Request) {
	b, _, err := h.batch(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, h.view(b))
}

const (
	defaultRejectLimit = 100
	maxRejectLimit     = 1000
)

func (h *Handler) rejects(ctx context.Context, b sluice.Batch, after int64, limit int) (RejectList, error) {
	out := RejectList{BatchID: b.ID, RowsRejected: b.RowsRejected, Rejects: []RejectView{}}
	if b.State == StateQueued {
		return out, nil
	}
	rs, err := h.d.Ledger.Rejects(ctx, b.ID, after, limit+1)
	if err != nil {
		return out, err
	}
	if len(rs) > limit {
		rs = rs[:limit]
		out.NextAfter = rs[len(rs)-1].Line
	}
	out.Rejects = rejectViews(rs)
	return out, nil
}

func (h *Handler) apiErrors(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch q.Get("format") {
	case "", "json":
	case "csv":
		h.downloadErrors(w, r)
		return
	default:
		writeError(w, http.StatusBadRequest, "format must be json or csv")
		return
	}
	after, limit := int64(0), defaultRejectLimit
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "after must be a line number (0 or more)")
			return
		}
		after = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxRejectLimit {
			writeError(w, http.StatusBadRequest, "limit must be a number from 1 to %d", maxRejectLimit)
			return
		}
		limit = n
	}
	b, _, err := h.batch(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out, err := h.rejects(r.Context(), b, after, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) downloadOutput(w http.ResponseWriter, r *http.Request) {
	h.download(w, r, "output", func(b sluice.Batch) string { return b.OutputKey }, "text/csv; charset=utf-8")
}

func (h *Handler) downloadErrors(w http.ResponseWriter, r *http.Request) {
	h.download(w, r, "error report", func(b sluice.Batch) string { return b.ErrorsKey }, "text/csv; charset=utf-8")
}

func (h *Handler) downloadManifest(w http.ResponseWriter, r *http.Request) {
	h.download(w, r, "manifest", func(b sluice.Batch) string { return b.ManifestKey }, "application/json")
}

// download streams one of a batch's objects through the console, so a
// viewer needs no access to the bucket and no link ever names a path.
func (h *Handler) download(w http.ResponseWriter, r *http.Request, what string, key func(sluice.Batch) string, ctype string) {
	ctx := r.Context()
	b, _, err := h.batch(ctx, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	k := key(b)
	if k == "" {
		msg := fmt.Sprintf("batch %s has no %s yet (it is %s)", b.ID, what, b.State)
		if b.State == sluice.StateFailed {
			msg = fmt.Sprintf("batch %s failed, so it has no %s: %s", b.ID, what, sluice.DisplayText(b.Reason))
		}
		writeError(w, http.StatusNotFound, "%s", msg)
		return
	}
	info, err := h.d.Blobs.Stat(ctx, k)
	if err != nil {
		if errors.Is(err, sluice.ErrNotFound) {
			writeError(w, http.StatusNotFound, "the %s of batch %s is no longer in the bucket", what, b.ID)
			return
		}
		h.fail(w, r, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", ctype)
	hd.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": sluice.DisplayName(pipeline.DownloadName(b, k))}))
	hd.Set("Cache-Control", "private, no-cache")
	if info.ETag != "" {
		hd.Set("ETag", `"`+strings.Trim(info.ETag, `"`)+`"`)
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	rc, err := h.d.Blobs.Get(ctx, k)
	if err != nil {
		hd.Del("Content-Length")
		hd.Del("Content-Disposition")
		h.fail(w, r, err)
		return
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil && ctx.Err() == nil {
		h.d.Logger.Warn("console download cut short", "batch_id", b.ID, "key", k, "err", err)
	}
}
