// Package console is the batch console: a small web UI and JSON API that
// answers "where is my file?". It reads batches and rejected rows through
// the sluice.Ledger port and streams outputs through the sluice.BlobStore
// port, so the same handler serves the embedded engine (SQLite, a local
// directory) and, later, AWS (DynamoDB, S3). Uploads go through an
// Uploader, which locally submits the file to the embedded engine.
//
// Routes (all JSON errors are {"error": "...", "status": N}):
//
//	GET  /                               batch list and upload form
//	GET  /batches/{id}                   one batch
//	POST /upload                         the upload form (redirects to the batch page)
//	GET  /api/batches                    ?limit=&cursor= or ?page=, ?state=
//	GET  /api/batches/{id}
//	GET  /api/batches/{id}/errors        ?after=LINE&limit=, ?format=csv
//	GET  /api/batches/{id}/errors.csv    the whole error report
//	GET  /api/batches/{id}/output        the merged output
//	GET  /api/batches/{id}/manifest      the manifest
//	POST /api/uploads                    multipart field "file", or a raw body with ?name=
//	POST /api/uploads/url?name=          a URL to PUT the file to, where the uploader offers one
package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// DefaultMaxUploadBytes is the upload limit when Options leaves it zero:
// the pipeline's own default limit on an input file.
const DefaultMaxUploadBytes int64 = 10 << 30

// Options say who may use the console and how much they may upload.
type Options struct {
	// Token, when set, is required on every API call and page: as
	// "Authorization: Bearer TOKEN", as a cookie that "?token=TOKEN" sets
	// in a browser, or as ?token= itself.
	Token string
	// MaxUploadBytes caps one uploaded file (413 beyond it); 0 means
	// DefaultMaxUploadBytes.
	MaxUploadBytes int64
	// BasePath is where the console is mounted when it is not at the root
	// ("/console"); the server strips it (http.StripPrefix) and the
	// console puts it in front of every link it writes.
	BasePath string
	// AllowedHosts are the names, besides loopback ones, that the console
	// answers to in the Host header (see HostGuard); any other gets 421.
	AllowedHosts []string
	// Feeds are the configured feeds' names: the list's feed filter
	// offers them, and ?feed= takes only them (and "none": batches of
	// objects no feed claimed). Empty: any well-formed name is taken.
	Feeds []string
	// TraceURL, when set, links a batch's trace ID to a trace UI: the
	// batch's trace ID replaces {traceId} in it (Grafana Explore, Jaeger,
	// an X-Ray console URL). cmd/sluice reads it from SLUICE_TRACE_URL.
	TraceURL string
}

// Deps is everything the console needs. Ledger and Blobs are required;
// without an Uploader the console only reads.
type Deps struct {
	Ledger   sluice.Ledger
	Blobs    sluice.BlobStore
	Uploader Uploader
	Options  Options
	Logger   *slog.Logger
	// Now is the clock for running timings; default time.Now.
	Now func() time.Time
}

// Handler is the console. It is an http.Handler to mount at a server's
// root (sluice console) or under a prefix with http.StripPrefix.
type Handler struct {
	d      Deps
	mux    *http.ServeMux
	hosts  *HostGuard
	pages  map[string]*template.Template
	cookie string // the cookie value a browser holding the token carries

	mu      sync.Mutex
	pending map[string]pendingUpload // accepted uploads the splitter has not recorded yet
}

// pendingUpload is a batch this console submitted whose record the splitter
// has not created yet; its page shows it as queued instead of unknown.
type pendingUpload struct {
	name, key string
	at        time.Time
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

const cookieName = "sluice_console"

// New builds the console over its dependencies.
func New(d Deps) *Handler {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	d.Options.BasePath = strings.TrimRight(d.Options.BasePath, "/")
	if d.Options.MaxUploadBytes <= 0 {
		d.Options.MaxUploadBytes = DefaultMaxUploadBytes
	}
	h := &Handler{d: d, mux: http.NewServeMux(), hosts: NewHostGuard(d.Options.AllowedHosts...), pending: map[string]pendingUpload{}}
	if d.Options.Token != "" {
		// The cookie holds a MAC of the token rather than the token itself,
		// so a leaked cookie does not reveal the API token.
		m := hmac.New(sha256.New, []byte(d.Options.Token))
		m.Write([]byte("sluice console cookie v1"))
		h.cookie = hex.EncodeToString(m.Sum(nil))
	}
	h.pages = parsePages()
	h.routes()
	return h
}

func (h *Handler) routes() {
	static, _ := fs.Sub(staticFS, "static")
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })

	api := func(pattern string, methods map[string]http.HandlerFunc) {
		h.mux.Handle(pattern, h.auth(true, byMethod(methods)))
	}
	api("/api/batches", map[string]http.HandlerFunc{"GET": h.apiList})
	api("/api/batches/{id}", map[string]http.HandlerFunc{"GET": h.apiBatch})
	api("/api/batches/{id}/errors", map[string]http.HandlerFunc{"GET": h.apiErrors})
	api("/api/batches/{id}/errors.csv", map[string]http.HandlerFunc{"GET": h.downloadErrors})
	api("/api/batches/{id}/output", map[string]http.HandlerFunc{"GET": h.downloadOutput})
	api("/api/batches/{id}/manifest", map[string]http.HandlerFunc{"GET": h.downloadManifest})
	api("/api/uploads", map[string]http.HandlerFunc{"POST": h.apiUpload})
	api("/api/uploads/url", map[string]http.HandlerFunc{"POST": h.apiUploadURL})
	api("/api/", map[string]http.HandlerFunc{"*": func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint: %s %s", r.Method, r.URL.Path)
	}})

	page := func(pattern string, methods map[string]http.HandlerFunc) {
		h.mux.Handle(pattern, h.auth(false, byMethod(methods)))
	}
	page("/{$}", map[string]http.HandlerFunc{"GET": h.pageList})
	page("/batches/{id}", map[string]http.HandlerFunc{"GET": h.pageBatch})
	page("/upload", map[string]http.HandlerFunc{"POST": h.pageUpload})
	page("/", map[string]http.HandlerFunc{"*": func(w http.ResponseWriter, r *http.Request) {
		h.pageError(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
	}})
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	// No referrer to other sites. (Not "no-referrer": Chrome then sends
	// "Origin: null" on the console's own form posts.)
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.hosts.Wrap(h.mux).ServeHTTP(w, r)
}

// byMethod dispatches on the request method and answers any other method
// with a JSON 405 (the mux's own 405 is plain text). "*" takes any method.
func byMethod(m map[string]http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f, ok := m[r.Method]; ok {
			f(w, r)
			return
		}
		if r.Method == http.MethodHead {
			if f, ok := m["GET"]; ok {
				f(w, r)
				return
			}
		}
		if f, ok := m["*"]; ok {
			f(w, r)
			return
		}
		var allow []string
		for k := range m {
			allow = append(allow, k)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path)
	})
}

// auth requires the token when one is configured. A browser that opens any
// page with ?token= gets a cookie and is redirected to the same URL without
// the token, so it stays out of the address bar and history.
func (h *Handler) auth(isAPI bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && !sameOrigin(r) {
			h.deny(w, r, isAPI, http.StatusForbidden, "cross-origin request refused")
			return
		}
		if h.d.Options.Token == "" {
			next.ServeHTTP(w, r)
			return
		}
		if a := r.Header.Get("Authorization"); a != "" {
			tok, ok := strings.CutPrefix(a, "Bearer ")
			if ok && h.tokenOK(tok) {
				next.ServeHTTP(w, r)
				return
			}
			h.deny(w, r, isAPI, http.StatusUnauthorized, "the bearer token is not valid")
			return
		}
		if q := r.URL.Query(); q.Has("token") {
			if !h.tokenOK(q.Get("token")) {
				h.deny(w, r, isAPI, http.StatusUnauthorized, "the token is not valid")
				return
			}
			http.SetCookie(w, &http.Cookie{
				Name: cookieName, Value: h.cookie, Path: h.d.Options.BasePath + "/", HttpOnly: true,
				SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
			})
			if !isAPI && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
				q.Del("token")
				u := *r.URL
				u.RawQuery = q.Encode()
				http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(cookieName); err == nil && subtle.ConstantTimeCompare([]byte(c.Value), []byte(h.cookie)) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		h.deny(w, r, isAPI, http.StatusUnauthorized, "this console needs a token: send \"Authorization: Bearer TOKEN\", or open the page once with ?token=TOKEN")
	})
}

func (h *Handler) tokenOK(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), []byte(h.d.Options.Token)) == 1
}

func (h *Handler) deny(w http.ResponseWriter, r *http.Request, isAPI bool, status int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice console"`)
	}
	if isAPI {
		writeError(w, status, "%s", msg)
		return
	}
	h.pageError(w, r, status, msg)
}

// sameOrigin refuses POSTs that a browser sends from another site's page
// (the cookie would ride along); clients that send no Origin are not
// browsers acting for another site.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "same-site", "cross-site":
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func cacheFor(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age="+itoa(int64(d.Seconds())))
		next.ServeHTTP(w, r)
	})
}

// remember notes an accepted upload until the splitter records its batch.
func (h *Handler) remember(id, name, key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.d.Now()
	for k, p := range h.pending {
		if now.Sub(p.at) > 15*time.Minute {
			delete(h.pending, k)
		}
	}
	h.pending[id] = pendingUpload{name: name, key: key, at: now}
}

func (h *Handler) pendingBatch(id string) (pendingUpload, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.pending[id]
	return p, ok
}

func (h *Handler) forget(id string) {
	h.mu.Lock()
	delete(h.pending, id)
	h.mu.Unlock()
}
