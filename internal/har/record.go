package har

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Recorder is an http.RoundTripper that records every request made through
// it, with its response, as an entry of a HAR log — what a browser's
// DevTools records. Drive an application through it as a browser would
// (pages with Sec-Fetch-Dest: document, script requests with
// Sec-Fetch-Dest: empty) and write the recording with Write. It is safe
// for concurrent use.
type Recorder struct {
	// Transport makes the requests; nil is http.DefaultTransport.
	Transport http.RoundTripper

	mu      sync.Mutex
	entries []*Entry
}

// RoundTrip makes the request and records it.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rt := r.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	start := time.Now()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return resp, nil
	}
	e := &Entry{Started: start, Time: time.Since(start), ServerIP: req.URL.Hostname()}
	u := *req.URL
	h := req.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Host", req.Host)
	if h.Get("Host") == "" {
		h.Set("Host", u.Host)
	}
	e.Request = Request{Method: req.Method, URL: &u, HTTPVersion: "HTTP/1.1", Headers: h}
	for _, c := range req.Cookies() {
		e.Request.Cookies = append(e.Request.Cookies, Cookie{Name: c.Name, Value: c.Value})
	}
	if len(reqBody) > 0 {
		e.Request.Body = &Body{MimeType: req.Header.Get("Content-Type"), Text: string(reqBody)}
	}
	e.Response = Response{Status: resp.StatusCode, StatusText: strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode))),
		HTTPVersion: "HTTP/1.1", Headers: resp.Header.Clone(), MimeType: mediaType(resp.Header.Get("Content-Type")),
		Size: int64(len(body)), Body: body}
	for _, c := range resp.Cookies() {
		e.Response.Cookies = append(e.Response.Cookies, Cookie{Name: c.Name, Value: c.Value, Path: c.Path, Domain: c.Domain, HTTPOnly: c.HttpOnly, Secure: c.Secure})
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		if lu, err := req.URL.Parse(loc); err == nil {
			e.Response.RedirectURL = lu.String()
		}
	}
	switch d := strings.ToLower(req.Header.Get("Sec-Fetch-Dest")); d {
	case "document":
		e.ResourceType, e.Initiator = "document", "other"
	case "empty":
		e.ResourceType, e.Initiator = "fetch", "script"
		if strings.EqualFold(req.Header.Get("X-Requested-With"), "XMLHttpRequest") {
			e.ResourceType = "xhr"
		}
	case "":
	default:
		e.ResourceType, e.Initiator = d, "parser"
	}
	r.mu.Lock()
	e.Index = len(r.entries)
	r.entries = append(r.entries, e)
	r.mu.Unlock()
	return resp, nil
}

// Log returns the recording so far.
func (r *Recorder) Log() *Log {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &Log{Version: "1.2", Creator: Creator{Name: "stampede har.Recorder", Version: "1"}, Entries: append([]*Entry(nil), r.entries...)}
}
