package har

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Write writes a recording as HAR 1.2, as Chromium exports it: one entry
// per request with its headers, cookies, body (text, or base64 for a
// binary body), timings and Chromium's _resourceType and _initiator. Bodies
// are written as the Log holds them (Body, which Read keeps only for text).
func Write(w io.Writer, l *Log) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	out := outLog{Log: outInner{Version: "1.2", Creator: l.Creator, Pages: []outPage{}, Entries: []outEntry{}}}
	if out.Log.Creator.Name == "" {
		out.Log.Creator = Creator{Name: "stampede", Version: "har"}
	}
	if l.Browser.Name != "" {
		b := l.Browser
		out.Log.Browser = &b
	}
	for _, p := range l.Pages {
		out.Log.Pages = append(out.Log.Pages, outPage{ID: p.ID, Title: p.Title, StartedDateTime: stamp(p.Started),
			PageTimings: map[string]float64{"onContentLoad": -1, "onLoad": -1}})
	}
	for _, e := range l.Entries {
		out.Log.Entries = append(out.Log.Entries, outEntryOf(e))
	}
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("har: write: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("har: write: %w", err)
	}
	return nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

type outLog struct {
	Log outInner `json:"log"`
}

type outInner struct {
	Version string     `json:"version"`
	Creator Creator    `json:"creator"`
	Browser *Creator   `json:"browser,omitempty"`
	Pages   []outPage  `json:"pages"`
	Entries []outEntry `json:"entries"`
}

type outPage struct {
	ID              string             `json:"id"`
	Title           string             `json:"title"`
	StartedDateTime string             `json:"startedDateTime"`
	PageTimings     map[string]float64 `json:"pageTimings"`
}

type outEntry struct {
	ResourceType    string             `json:"_resourceType,omitempty"`
	Initiator       *outInitiator      `json:"_initiator,omitempty"`
	Pageref         string             `json:"pageref,omitempty"`
	StartedDateTime string             `json:"startedDateTime"`
	Time            float64            `json:"time"`
	Request         outRequest         `json:"request"`
	Response        outResponse        `json:"response"`
	Cache           struct{}           `json:"cache"`
	Timings         map[string]float64 `json:"timings"`
	ServerIPAddress string             `json:"serverIPAddress,omitempty"`
}

type outInitiator struct {
	Type string `json:"type"`
	URL  string `json:"url,omitempty"`
}

type outRequest struct {
	Method      string       `json:"method"`
	URL         string       `json:"url"`
	HTTPVersion string       `json:"httpVersion"`
	Headers     []rawNV      `json:"headers"`
	QueryString []rawNV      `json:"queryString"`
	Cookies     []rawCookie  `json:"cookies"`
	HeadersSize int          `json:"headersSize"`
	BodySize    int          `json:"bodySize"`
	PostData    *outPostData `json:"postData,omitempty"`
}

type outPostData struct {
	MimeType string     `json:"mimeType"`
	Text     string     `json:"text"`
	Params   []rawParam `json:"params,omitempty"`
}

type outResponse struct {
	Status      int         `json:"status"`
	StatusText  string      `json:"statusText"`
	HTTPVersion string      `json:"httpVersion"`
	Headers     []rawNV     `json:"headers"`
	Cookies     []rawCookie `json:"cookies"`
	Content     outContent  `json:"content"`
	RedirectURL string      `json:"redirectURL"`
	HeadersSize int         `json:"headersSize"`
	BodySize    int64       `json:"bodySize"`
}

type outContent struct {
	Size     int64  `json:"size"`
	MimeType string `json:"mimeType"`
	Text     string `json:"text,omitempty"`
	Encoding string `json:"encoding,omitempty"`
}

func outHeaders(h http.Header) []rawNV {
	out := []rawNV{}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			out = append(out, rawNV{Name: k, Value: v})
		}
	}
	return out
}

func outEntryOf(e *Entry) outEntry {
	o := outEntry{ResourceType: e.ResourceType, Pageref: e.Pageref, StartedDateTime: stamp(e.Started),
		ServerIPAddress: e.ServerIP, Timings: map[string]float64{"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0, "wait": 0, "receive": 0}}
	if e.Initiator != "" {
		o.Initiator = &outInitiator{Type: e.Initiator, URL: e.InitiatorURL}
	}
	if e.Time >= 0 {
		o.Time = float64(e.Time) / float64(time.Millisecond)
		o.Timings["wait"] = o.Time
	} else {
		o.Time = -1
	}
	rq := &e.Request
	o.Request = outRequest{Method: rq.Method, URL: rq.URL.String(), HTTPVersion: nonEmpty(rq.HTTPVersion, "HTTP/1.1"),
		Headers: outHeaders(rq.Headers), QueryString: []rawNV{}, Cookies: []rawCookie{}, HeadersSize: -1}
	for _, p := range parseQueryOrdered(rq.URL.RawQuery) {
		o.Request.QueryString = append(o.Request.QueryString, rawNV{Name: p.Name, Value: p.Value})
	}
	for _, c := range rq.Cookies {
		o.Request.Cookies = append(o.Request.Cookies, rawCookie{Name: c.Name, Value: c.Value})
	}
	if b := rq.Body; b != nil {
		o.Request.PostData = &outPostData{MimeType: b.MimeType, Text: b.Text}
		for _, p := range b.Params {
			o.Request.PostData.Params = append(o.Request.PostData.Params, rawParam(p))
		}
		o.Request.BodySize = len(b.Text)
	}
	rs := &e.Response
	o.Response = outResponse{Status: rs.Status, StatusText: nonEmpty(rs.StatusText, http.StatusText(rs.Status)),
		HTTPVersion: nonEmpty(rs.HTTPVersion, "HTTP/1.1"), Headers: outHeaders(rs.Headers), Cookies: []rawCookie{},
		RedirectURL: rs.RedirectURL, HeadersSize: -1, BodySize: rs.Size}
	for _, c := range rs.Cookies {
		o.Response.Cookies = append(o.Response.Cookies, rawCookie(c))
	}
	mt := rs.Headers.Get("Content-Type")
	if mt == "" {
		mt = rs.MimeType
	}
	o.Response.Content = outContent{Size: rs.Size, MimeType: mt}
	if len(rs.Body) > 0 {
		if utf8.Valid(rs.Body) && isTextType(rs.MimeType) {
			o.Response.Content.Text = string(rs.Body)
		} else {
			o.Response.Content.Text = base64.StdEncoding.EncodeToString(rs.Body)
			o.Response.Content.Encoding = "base64"
		}
	}
	if o.Response.Content.Size < 0 {
		o.Response.Content.Size = int64(len(rs.Body))
	}
	return o
}

func nonEmpty(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}
