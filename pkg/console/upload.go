package console

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// Uploader takes a file from a person and starts its batch.
//
// Locally (EngineUploader) the file goes under input/ and the embedded
// engine is told, as `sluice run` does. An uploader for AWS may stream the
// file to S3's input/ and let the bucket notification start the batch; it
// then returns the key and no batch ID.
type Uploader interface {
	// Upload reads the file named name (a base name, already checked) from
	// r; size is its length, or -1 when unknown. Errors from r must be
	// wrapped with %w: the console answers a too-large body with 413.
	Upload(ctx context.Context, name string, r io.Reader, size int64) (Upload, error)
}

// URLUploader is what an Uploader also implements when a browser can send
// the file straight to the bucket (on AWS: a presigned PUT to input/), so a
// large file does not pass through the console.
type URLUploader interface {
	UploadURL(ctx context.Context, name string) (UploadTarget, error)
}

// Upload is an accepted upload.
type Upload struct {
	// BatchID is the batch the file started, where the uploader knows it.
	BatchID string `json:"batchId,omitempty"`
	Key     string `json:"key"` // the input object
	// Resumed is true when an unfinished batch of the same file (same
	// name and content) already existed; BatchID names it.
	Resumed bool `json:"resumed"`
}

// UploadTarget says where a client sends the file itself.
type UploadTarget struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"` // PUT
	Key     string            `json:"key"`
	Headers map[string]string `json:"headers,omitempty"` // to send with the request
	Expires time.Time         `json:"expiresAt,omitzero"`
}

// ErrBusy is returned by an Uploader when a different file of the same
// name is still on its way through the pipeline (409).
var ErrBusy = errors.New("a different file with this name is still being processed; try again when its batch has ended, or rename the file")

var errTooLarge = errors.New("upload too large")

// multipartSlack is what a multipart body may add around the file: the
// boundaries, part headers and small form fields.
const multipartSlack = 64 << 10

// UploadResult is what POST /api/uploads answers (201).
type UploadResult struct {
	Upload
	File  string `json:"file"`
	Links *Links `json:"links,omitempty"` // when the batch ID is known
}

func (h *Handler) apiUpload(w http.ResponseWriter, r *http.Request) {
	name, up, err := h.receive(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	res := UploadResult{Upload: up, File: name}
	if up.BatchID != "" {
		res.Links = &Links{
			Self:   h.link("/api/batches/%s", up.BatchID),
			Page:   h.link("/batches/%s", up.BatchID),
			Errors: h.link("/api/batches/%s/errors", up.BatchID),
		}
		w.Header().Set("Location", res.Links.Self)
	}
	writeJSON(w, http.StatusCreated, res)
}

func (h *Handler) apiUploadURL(w http.ResponseWriter, r *http.Request) {
	uu, ok := h.d.Uploader.(URLUploader)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this console takes the file itself: POST it to %s", h.link("/api/uploads"))
		return
	}
	name, err := cleanName(r.URL.Query().Get("name"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	t, err := uu.UploadURL(r.Context(), name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// receive reads an upload, multipart (field "file") or a raw body named by
// ?name=, and hands it to the uploader. It never holds the file in memory.
func (h *Handler) receive(w http.ResponseWriter, r *http.Request) (string, Upload, error) {
	if h.d.Uploader == nil {
		return "", Upload{}, errorf(http.StatusNotImplemented, "this console does not take uploads")
	}
	limit := h.d.Options.MaxUploadBytes
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		if r.ContentLength > limit+multipartSlack {
			return "", Upload{}, errTooLarge
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit+multipartSlack)
		mr, err := r.MultipartReader()
		if err != nil {
			return "", Upload{}, errorf(http.StatusBadRequest, "malformed multipart body: %v", err)
		}
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				return "", Upload{}, errorf(http.StatusBadRequest, `the form has no "file" field`)
			}
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					return "", Upload{}, errTooLarge
				}
				return "", Upload{}, errorf(http.StatusBadRequest, "malformed multipart body: %v", err)
			}
			if part.FormName() != "file" {
				part.Close()
				continue
			}
			name := part.FileName()
			if name == "" {
				name = r.URL.Query().Get("name")
			}
			if name == "" {
				return "", Upload{}, errorf(http.StatusBadRequest, "choose a file to upload")
			}
			up, err := h.store(r.Context(), name, part, -1)
			return name, up, err
		}
	}
	name := r.URL.Query().Get("name")
	if name == "" {
		return "", Upload{}, errorf(http.StatusBadRequest, `send the file as multipart form field "file", or as the body with ?name=FILE.csv`)
	}
	if r.ContentLength > limit {
		return "", Upload{}, errTooLarge
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	up, err := h.store(r.Context(), name, r.Body, r.ContentLength)
	return name, up, err
}

// store checks the name and the body's first byte, then uploads.
func (h *Handler) store(ctx context.Context, name string, body io.Reader, size int64) (Upload, error) {
	clean, err := cleanName(name)
	if err != nil {
		return Upload{}, err
	}
	br := bufio.NewReaderSize(&capped{r: body, left: h.d.Options.MaxUploadBytes}, 64<<10)
	if _, err := br.Peek(1); err == io.EOF {
		return Upload{}, errorf(http.StatusBadRequest, "%s is empty", clean)
	} else if err != nil {
		return Upload{}, fmt.Errorf("reading the upload: %w", err)
	}
	up, err := h.d.Uploader.Upload(ctx, clean, br, size)
	if err != nil {
		return Upload{}, err
	}
	if up.BatchID != "" {
		h.remember(up.BatchID, clean, up.Key)
	}
	return up, nil
}

// cleanName keeps the base name of what a browser sent (some send a path)
// and refuses names that cannot be an object key under input/.
func cleanName(name string) (string, error) {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSpace(name)
	switch {
	case name == "" || name == "." || name == "..":
		return "", errorf(http.StatusBadRequest, "the file needs a name")
	case !utf8.ValidString(name):
		return "", errorf(http.StatusBadRequest, "the file name is not valid UTF-8")
	}
	if err := sluice.ValidateKey(pipeline.InputPrefix + name); err != nil {
		return "", errorf(http.StatusBadRequest, "the file name %s cannot be used: %v", strconv.Quote(name), err)
	}
	// A name with an invisible or text-direction character can pass for
	// another ("invoice\u202Evsc.exe" shows as "invoiceexe.csv"). Here a
	// person can rename the file, so it is refused; names that arrive by
	// other ways are shown with the character made visible.
	if r, ok := sluice.HiddenRune(name); ok {
		return "", errorf(http.StatusBadRequest, "the file name %s contains U+%04X, an invisible or text-direction control character that can disguise what a file is; rename the file without it", sluice.DisplayName(name), r)
	}
	return name, nil
}

// capped fails with errTooLarge once more than left bytes were read: a
// multipart file part has no length of its own.
type capped struct {
	r    io.Reader
	left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, errTooLarge
	}
	return n, err
}
