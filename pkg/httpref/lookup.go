package httpref

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// entry is a cached answer: a key's values, or that the API does not know it.
type entry struct {
	vals  []string
	known bool
}

// Columns are the key and the appended fields.
func (r *Reference) Columns(context.Context) ([]string, error) {
	return append([]string{r.key}, r.fields...), nil
}

// Lookup answers from the cache what it can, and asks the API for the rest:
// each distinct key once, maxBatch keys a call, concurrency calls at a time.
func (r *Reference) Lookup(ctx context.Context, keys []string) ([][]string, error) {
	found := make(map[string]entry, len(keys))
	var ask []string
	for _, k := range keys {
		if _, ok := found[k]; ok {
			continue
		}
		if e, ok := r.cache.Get(k); ok {
			found[k] = e
			continue
		}
		found[k] = entry{} // asked once, even when repeated
		ask = append(ask, k)
	}
	got := make([]map[string][]string, (len(ask)+r.cfg.MaxBatch-1)/r.cfg.MaxBatch)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Concurrency)
	for i := range got {
		part := ask[i*r.cfg.MaxBatch : min(len(ask), (i+1)*r.cfg.MaxBatch)]
		g.Go(func() (err error) {
			got[i], err = r.fetch(gctx, part)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, m := range got {
		for _, k := range ask[i*r.cfg.MaxBatch : min(len(ask), (i+1)*r.cfg.MaxBatch)] {
			v, ok := m[k]
			e := entry{vals: v, known: ok}
			r.cache.Add(k, e) // unknown keys too: the API said so
			found[k] = e
		}
	}
	vals := make([][]string, len(keys))
	for i, k := range keys {
		if e := found[k]; e.known {
			vals[i] = e.vals
		}
	}
	return vals, nil
}

// fetch asks the API for keys, in one call: their records by key, a key
// absent when unknown.
func (r *Reference) fetch(ctx context.Context, keys []string) (map[string][]string, error) {
	select { // concurrency bounds the calls of all the worker's chunks together
	case r.calls <- struct{}{}:
		defer func() { <-r.calls }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.cfg.Mode == "single" {
		k := keys[0]
		u, ok := keyURL(r.cfg.URL, k)
		if !ok {
			return nil, nil // a key no URL can carry: unknown
		}
		a, err := r.call(ctx, http.MethodGet, u, nil)
		if err != nil || a.status == http.StatusNotFound {
			return nil, err
		}
		rec, err := r.decodeRecord(a.body)
		if err != nil {
			return nil, r.drift(k, err)
		}
		return map[string][]string{k: rec}, nil
	}
	body, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}
	a, err := r.call(ctx, http.MethodPost, r.cfg.URL, body)
	if err != nil {
		return nil, err
	}
	if a.status == http.StatusNotFound {
		// In batch mode an unknown key is a record left out; a 404 for the
		// whole call means the endpoint is wrong, and taking it for "every
		// key unknown" would complete the batch un-enriched.
		return nil, sluice.Permanentf("reference API %s answered the batch call with HTTP 404: check reference.http.url (%s)", r.cfg.URL, snippet(a.body))
	}
	return r.decodeBatch(keys, a.body)
}

// decodeBatch reads a batch answer: a JSON list of records, each holding
// its key. Records for keys not asked are ignored.
func (r *Reference) decodeBatch(keys []string, body []byte) (map[string][]string, error) {
	var recs []map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&recs); err != nil {
		return nil, r.drift("", fmt.Errorf("the answer is not a JSON list of records: %w", err))
	}
	asked := make(map[string]bool, len(keys))
	for _, k := range keys {
		asked[k] = true
	}
	out := make(map[string][]string, len(recs))
	for _, rec := range recs {
		k, err := scalar(rec[r.key])
		if err != nil || rec[r.key] == nil {
			return nil, r.drift("", fmt.Errorf("a record has no usable key field %q", r.key))
		}
		if !asked[k] {
			continue
		}
		v, err := r.values(rec)
		if err != nil {
			return nil, r.drift(k, err)
		}
		out[k] = v
	}
	return out, nil
}

func (r *Reference) decodeRecord(body []byte) ([]string, error) {
	var rec map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&rec); err != nil {
		return nil, fmt.Errorf("the answer is not a JSON record: %w", err)
	}
	return r.values(rec)
}

// values renders a record's fields in order. A field gone, or an object
// where a value belongs, is an error: the API's schema drifted.
func (r *Reference) values(rec map[string]any) ([]string, error) {
	v := make([]string, len(r.fields))
	for i, f := range r.fields {
		x, ok := rec[f]
		if !ok {
			return nil, fmt.Errorf("field %q is missing", f)
		}
		s, err := scalar(x)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", f, err)
		}
		v[i] = s
	}
	return v, nil
}

// scalar renders a JSON value as a cell: text as is, numbers as written,
// booleans as true/false, null as empty.
func scalar(x any) (string, error) {
	switch x := x.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	case nil:
		return "", nil
	default:
		return "", fmt.Errorf("holds a %T where a value belongs", x)
	}
}

// drift fails the lookup for good: retrying an API whose answers no longer
// match the configuration would only fail again, and enriching with holes
// would complete a batch with wrong rows.
func (r *Reference) drift(key string, err error) error {
	if key != "" {
		err = fmt.Errorf("key %q: %w", key, err)
	}
	return sluice.Permanentf("reference API %s answered in an unexpected shape (schema drift?): %v", r.cfg.URL, err)
}

// keyURL puts key in the URL template where {key} stands, each occurrence
// escaped for its place: before the '?' as a path segment ("../admin" and
// "a?b=c" stay one segment), after it as a query value ("a&admin=1" stays
// one value). So a key cannot change the request's path or query. The
// segments no escaping protects, "", "." and "..", which a server or proxy
// resolves against the path, are never sent: known false, the key is
// unknown and onMissing applies, as a local reference, which holds no
// such key, would answer.
func keyURL(tmpl, key string) (u string, known bool) {
	path, query, hasQuery := strings.Cut(tmpl, "?")
	if strings.Contains(path, "{key}") && (key == "" || key == "." || key == "..") {
		return "", false
	}
	u = strings.ReplaceAll(path, "{key}", url.PathEscape(key))
	if hasQuery {
		u += "?" + strings.ReplaceAll(query, "{key}", url.QueryEscape(key))
	}
	return u, true
}
