package har

import (
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// BodyKind is how a request body is encoded.
type BodyKind int

// The body kinds.
const (
	BodyNone      BodyKind = iota
	BodyForm               // application/x-www-form-urlencoded
	BodyMultipart          // multipart/form-data
	BodyJSON               // application/json and +json
	BodyOther              // anything else, sent as recorded
)

// Kind returns how the body is encoded.
func (b *Body) Kind() BodyKind {
	if b == nil || (b.Text == "" && len(b.Params) == 0) {
		return BodyNone
	}
	mt := mediaType(b.MimeType)
	switch {
	case mt == "application/x-www-form-urlencoded":
		return BodyForm
	case mt == "multipart/form-data":
		return BodyMultipart
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return BodyJSON
	case mt == "" && json.Valid([]byte(b.Text)) && strings.HasPrefix(strings.TrimSpace(b.Text), "{"):
		return BodyJSON
	case mt == "" || mt == "text/plain":
		if _, err := url.ParseQuery(b.Text); err == nil && strings.Contains(b.Text, "=") && !strings.ContainsAny(b.Text, " \n{") {
			return BodyForm
		}
	}
	return BodyOther
}

// Fields returns the fields of a form or multipart body in the order sent;
// a file of a multipart body is a field whose Param has a FileName.
func (b *Body) Fields() []Param {
	switch b.Kind() {
	case BodyForm:
		if b.Text == "" {
			return append([]Param(nil), b.Params...)
		}
		return parseQueryOrdered(b.Text)
	case BodyMultipart:
		if ps := parseMultipart(b.MimeType, b.Text); ps != nil {
			return ps
		}
		return append([]Param(nil), b.Params...)
	}
	return nil
}

// JSON returns the decoded JSON body (numbers as json.Number).
func (b *Body) JSON() (any, bool) {
	if b.Kind() != BodyJSON {
		return nil, false
	}
	d := json.NewDecoder(strings.NewReader(b.Text))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, false
	}
	return v, true
}

// parseQueryOrdered parses a query string keeping the order of its fields
// (url.ParseQuery returns a map).
func parseQueryOrdered(s string) []Param {
	var out []Param
	for _, part := range strings.Split(s, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k = unescapeQuery(k)
		out = append(out, Param{Name: k, Value: unescapeQuery(v)})
	}
	return out
}

func unescapeQuery(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// parseMultipart reads the fields of a multipart body; nil when it cannot.
func parseMultipart(mimeType, text string) []Param {
	_, params, err := mime.ParseMediaType(mimeType)
	if err != nil || params["boundary"] == "" || text == "" {
		return nil
	}
	mr := multipart.NewReader(strings.NewReader(text), params["boundary"])
	var out []Param
	for i := 0; i < 10_000; i++ {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		data, _ := io.ReadAll(io.LimitReader(p, 1<<20))
		out = append(out, Param{Name: p.FormName(), Value: string(data), FileName: p.FileName(), ContentType: p.Header.Get("Content-Type")})
		_ = p.Close()
	}
	return out
}

// Where says where in a request a value was sent.
type Where string

// The places a request sends values.
const (
	InForm   Where = "form field"
	InQuery  Where = "query parameter"
	InJSON   Where = "JSON field"
	InHeader Where = "header"
	InPath   Where = "path segment"
	InCookie Where = "cookie"
)

// Sent is one value a request sent.
type Sent struct {
	Where Where
	// Name is the field, parameter or header name, the JSON path
	// ("user.id", "items[0].sku"), or the segment's position in the path
	// ("2" for the third segment).
	Name  string
	Value string
}

func (s Sent) String() string {
	if s.Where == InPath {
		return "path segment " + s.Name
	}
	return string(s.Where) + " " + s.Name
}

// ignoredHeaders are the request headers a browser sets by itself: they
// are never values to trace.
var ignoredHeaders = map[string]bool{
	"Accept": true, "Accept-Encoding": true, "Accept-Language": true, "Cache-Control": true, "Connection": true,
	"Content-Length": true, "Content-Type": true, "Cookie": true, "Host": true, "Origin": true, "Pragma": true,
	"Referer": true, "User-Agent": true, "Upgrade-Insecure-Requests": true, "If-None-Match": true,
	"If-Modified-Since": true, "Dnt": true, "Te": true, "Priority": true, "Purpose": true, "Sec-Purpose": true,
	"Keep-Alive": true, "Range": true, "If-Range": true, "Upgrade": true, "Proxy-Connection": true,
	"Access-Control-Request-Method": true, "Access-Control-Request-Headers": true, "Service-Worker": true,
}

// browserHeader reports whether a request header is the browser's own.
func browserHeader(name string) bool {
	k := strings.ToLower(name)
	return ignoredHeaders[http.CanonicalHeaderKey(name)] || strings.HasPrefix(k, "sec-") || strings.HasPrefix(k, "x-devtools") ||
		strings.HasPrefix(k, "x-client-data") || strings.HasPrefix(k, "x-chrome")
}

// SentValues lists every value a request sent that a server could have
// handed out: its form, multipart and JSON fields, query parameters,
// headers the page set (not the browser's own), path segments, and the
// cookies.
func (e *Entry) SentValues() []Sent {
	var out []Sent
	u := e.Request.URL
	segs := strings.Split(strings.Trim(u.EscapedPath(), "/"), "/")
	for i, s := range segs {
		if v, err := url.PathUnescape(s); err == nil && v != "" {
			out = append(out, Sent{Where: InPath, Name: strconv.Itoa(i), Value: v})
		}
	}
	for _, p := range parseQueryOrdered(u.RawQuery) {
		out = append(out, Sent{Where: InQuery, Name: p.Name, Value: p.Value})
	}
	names := make([]string, 0, len(e.Request.Headers))
	for k := range e.Request.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if browserHeader(k) {
			continue
		}
		for _, v := range e.Request.Headers[k] {
			out = append(out, Sent{Where: InHeader, Name: k, Value: v})
		}
	}
	b := e.Request.Body
	switch b.Kind() {
	case BodyForm, BodyMultipart:
		for _, p := range b.Fields() {
			if p.FileName == "" {
				out = append(out, Sent{Where: InForm, Name: p.Name, Value: p.Value})
			}
		}
	case BodyJSON:
		if v, ok := b.JSON(); ok {
			walkJSON("", v, func(path, val string) {
				out = append(out, Sent{Where: InJSON, Name: path, Value: val})
			})
		}
	}
	for _, c := range e.Request.Cookies {
		out = append(out, Sent{Where: InCookie, Name: c.Name, Value: c.Value})
	}
	return out
}

// walkJSON calls fn with the path and text of every scalar of v; paths are
// session.JSONPath's ("data.items[0].id").
func walkJSON(path string, v any, fn func(path, val string)) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			walkJSON(p, x[k], fn)
		}
	case []any:
		for i, e := range x {
			walkJSON(path+"["+strconv.Itoa(i)+"]", e, fn)
		}
	case string:
		fn(path, x)
	case json.Number:
		fn(path, x.String())
	case bool:
		fn(path, strconv.FormatBool(x))
	}
}
