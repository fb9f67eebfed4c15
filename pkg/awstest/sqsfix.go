package awstest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
)

// sqsCounts sits between every client and local-aws-sqs and corrects the
// queue depths the emulator reports, so that the adapters and services
// under test run exactly as they do against SQS, with no emulator switch in
// production code. The emulator's ApproximateNumberOfMessages includes
// received (in-flight) messages, and a message sent without delay counts as
// delayed until its next timer tick. The correction takes in-flight back
// out of the visible count and adds the "delayed" ones to it: right because
// Sluice never sends with a delay. Only GetQueueAttributes in the JSON
// protocol (the SDK's) is touched; every other call passes through.
func sqsCounts(emulator string) (*httptest.Server, error) {
	target, err := url.Parse(emulator)
	if err != nil {
		return nil, err
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if r.Context().Err() != nil {
			return // the client gave up (a long poll at shutdown): nothing to report
		}
		http.Error(w, "awstest: SQS emulator: "+err.Error(), http.StatusBadGateway)
	}
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Header.Get("X-Amz-Target") != "AmazonSQS.GetQueueAttributes" ||
			resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "" {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		body = fixCounts(body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	return httptest.NewServer(proxy), nil
}

// fixCounts rewrites the three depth attributes of a GetQueueAttributes
// answer; a body it cannot read is passed on as it came.
func fixCounts(body []byte) []byte {
	var out map[string]json.RawMessage
	var attrs map[string]string
	if json.Unmarshal(body, &out) != nil || json.Unmarshal(out["Attributes"], &attrs) != nil {
		return body
	}
	const vis, inflight, delayed = "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"
	v, okV := attrs[vis]
	f, okF := attrs[inflight]
	if !okV || !okF {
		return body // asked for one count alone: nothing to correct it with
	}
	n := func(s string) int { i, _ := strconv.Atoi(s); return i }
	visible := max(n(v)-n(f), 0) + n(attrs[delayed])
	attrs[vis] = strconv.Itoa(visible)
	if _, ok := attrs[delayed]; ok {
		attrs[delayed] = "0"
	}
	fixed, err := json.Marshal(attrs)
	if err != nil {
		return body
	}
	out["Attributes"] = fixed
	b, err := json.Marshal(out)
	if err != nil {
		return body
	}
	return b
}
