package har

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// The entry as the file spells it. Fields a recorder may leave out or set
// to null are plain values (null decodes as the zero value); fields of the
// wrong type are an error naming their path.
type rawEntry struct {
	Pageref         string      `json:"pageref"`
	StartedDateTime string      `json:"startedDateTime"`
	Time            *float64    `json:"time"`
	Request         rawRequest  `json:"request"`
	Response        rawResponse `json:"response"`
	ServerIPAddress string      `json:"serverIPAddress"`
	ResourceType    string      `json:"_resourceType"`
	// _initiator is an object in Chromium ({"type": "parser", "url": ...})
	// and a string in some tools: read either way.
	Initiator json.RawMessage `json:"_initiator"`
}

type rawPage struct {
	ID              string `json:"id"`
	Title           string `json:"title"`
	StartedDateTime string `json:"startedDateTime"`
}

type rawNV struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type rawCookie struct {
	Name     string `json:"name"`
	Value    string `json:"value"`
	Path     string `json:"path"`
	Domain   string `json:"domain"`
	HTTPOnly bool   `json:"httpOnly"`
	Secure   bool   `json:"secure"`
}

type rawRequest struct {
	Method      string       `json:"method"`
	URL         string       `json:"url"`
	HTTPVersion string       `json:"httpVersion"`
	Headers     []rawNV      `json:"headers"`
	Cookies     []rawCookie  `json:"cookies"`
	PostData    *rawPostData `json:"postData"`
}

type rawPostData struct {
	MimeType string     `json:"mimeType"`
	Text     string     `json:"text"`
	Encoding string     `json:"encoding"` // not in HAR 1.2, written by some tools
	Params   []rawParam `json:"params"`
}

type rawParam struct {
	Name        string `json:"name"`
	Value       string `json:"value"`
	FileName    string `json:"fileName"`
	ContentType string `json:"contentType"`
}

type rawResponse struct {
	Status      int         `json:"status"`
	StatusText  string      `json:"statusText"`
	HTTPVersion string      `json:"httpVersion"`
	Headers     []rawNV     `json:"headers"`
	Cookies     []rawCookie `json:"cookies"`
	Content     rawContent  `json:"content"`
	RedirectURL string      `json:"redirectURL"`
	// Chromium marks a response its service worker gave.
	ViaServiceWorker bool `json:"_fetchedViaServiceWorker"`
}

type rawContent struct {
	Size     *float64 `json:"size"`
	MimeType string   `json:"mimeType"`
	Text     string   `json:"text"`
	Encoding string   `json:"encoding"`
}

// entry converts a decoded entry, keeping only the bodies the budget allows.
func (r *reader) entry(i int, re *rawEntry) (*Entry, error) {
	path := fmt.Sprintf("log.entries[%d]", i)
	e := &Entry{Index: i, Pageref: re.Pageref, ServerIP: re.ServerIPAddress,
		ResourceType: strings.ToLower(re.ResourceType), Started: parseTime(re.StartedDateTime), Time: -1}
	if re.Time != nil && *re.Time >= 0 {
		e.Time = time.Duration(*re.Time * float64(time.Millisecond))
	}
	e.Initiator, e.InitiatorURL = initiator(re.Initiator)
	rq := &re.Request
	if rq.URL == "" {
		return nil, &Error{Offset: -1, Path: path + ".request.url", Msg: "missing: every entry needs its request's URL"}
	}
	u, err := url.Parse(rq.URL)
	if err != nil || u.Scheme == "" {
		return nil, &Error{Offset: -1, Path: path + ".request.url", Msg: fmt.Sprintf("%q is not a URL", clip(rq.URL, 80))}
	}
	e.Request = Request{Method: strings.ToUpper(strings.TrimSpace(rq.Method)), URL: u, HTTPVersion: rq.HTTPVersion,
		Headers: headers(rq.Headers)}
	if e.Request.Method == "" {
		e.Request.Method = "GET"
	}
	for _, c := range rq.Cookies {
		e.Request.Cookies = append(e.Request.Cookies, Cookie{Name: c.Name, Value: c.Value})
	}
	if len(e.Request.Cookies) == 0 {
		for _, line := range e.Request.Headers.Values("Cookie") {
			if cs, err := http.ParseCookie(line); err == nil {
				for _, c := range cs {
					e.Request.Cookies = append(e.Request.Cookies, Cookie{Name: c.Name, Value: c.Value})
				}
			}
		}
	}
	if pd := rq.PostData; pd != nil {
		b := &Body{MimeType: pd.MimeType}
		if b.MimeType == "" {
			b.MimeType = e.Request.Headers.Get("Content-Type")
		}
		text := pd.Text
		if strings.EqualFold(pd.Encoding, "base64") {
			if dec, ok := decodeBase64(text); ok {
				text = string(dec)
			} else {
				r.log.Warnings = append(r.log.Warnings, path+".request.postData.text: invalid base64: body left out")
				text = ""
			}
		}
		b.Text, b.Truncated = r.keep(path+".request.postData.text", text)
		for _, p := range pd.Params {
			b.Params = append(b.Params, Param(p))
		}
		e.Request.Body = b
	}

	rs := &re.Response
	e.Response = Response{Status: rs.Status, StatusText: rs.StatusText, HTTPVersion: rs.HTTPVersion,
		Headers: headers(rs.Headers), Size: -1}
	e.ViaServiceWorker = rs.ViaServiceWorker
	for _, c := range rs.Cookies {
		e.Response.Cookies = append(e.Response.Cookies, Cookie(c))
	}
	if len(e.Response.Cookies) == 0 {
		for _, line := range e.Response.Headers.Values("Set-Cookie") {
			if c, err := http.ParseSetCookie(line); err == nil {
				e.Response.Cookies = append(e.Response.Cookies, Cookie{Name: c.Name, Value: c.Value, Path: c.Path,
					Domain: c.Domain, HTTPOnly: c.HttpOnly, Secure: c.Secure})
			}
		}
	}
	redirect := rs.RedirectURL
	if redirect == "" && rs.Status >= 300 && rs.Status < 400 {
		redirect = e.Response.Headers.Get("Location")
	}
	if redirect != "" {
		if ru, err := u.Parse(redirect); err == nil {
			e.Response.RedirectURL = ru.String()
		}
	}
	c := &rs.Content
	mt := c.MimeType
	if mt == "" {
		mt = e.Response.Headers.Get("Content-Type")
	}
	e.Response.MimeType = mediaType(mt)
	if c.Size != nil && *c.Size >= 0 {
		e.Response.Size = int64(*c.Size)
	}
	text := c.Text
	switch {
	case text == "":
	case !isTextType(e.Response.MimeType):
		e.Response.BodyLeftOut = "binary"
	case strings.EqualFold(c.Encoding, "base64"):
		dec, ok := decodeBase64(text)
		if !ok {
			r.log.Warnings = append(r.log.Warnings, path+".response.content.text: invalid base64: body left out")
			e.Response.BodyLeftOut = "invalid base64"
			break
		}
		text = string(dec)
		fallthrough
	default:
		kept, cut := r.keep(path+".response.content.text", text)
		if kept == "" && text != "" {
			e.Response.BodyLeftOut = "over the recording's budget"
			break
		}
		e.Response.Body, e.Response.Truncated = []byte(kept), cut
		if e.Response.Size < 0 {
			e.Response.Size = int64(len(text))
		}
	}
	return e, nil
}

// keep returns the part of a body the budget allows: up to maxBody of it,
// and nothing once the bodies kept would pass maxBodies.
func (r *reader) keep(path, text string) (string, bool) {
	if text == "" || r.full {
		return "", false
	}
	cut := false
	if int64(len(text)) > r.maxBody {
		text, cut = text[:r.maxBody], true
	}
	if r.used+int64(len(text)) > r.maxBodies {
		if !r.full {
			r.log.Warnings = append(r.log.Warnings, fmt.Sprintf("%s: the recording's bodies pass %d MiB: this and later bodies left out", path, r.maxBodies>>20))
			r.full = true
		}
		return "", false
	}
	r.used += int64(len(text))
	return strings.Clone(text), cut
}

// decodeBase64 decodes standard or URL base64, padded or not, ignoring
// line breaks (some tools wrap it).
func decodeBase64(s string) ([]byte, bool) {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' {
			return -1
		}
		return r
	}, s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// headers converts header pairs, dropping HTTP/2 pseudo-headers and
// splitting the Set-Cookie lines Chromium joins with newlines.
func headers(nvs []rawNV) http.Header {
	h := make(http.Header, len(nvs))
	for _, nv := range nvs {
		name := strings.TrimSpace(nv.Name)
		if name == "" || strings.HasPrefix(name, ":") {
			continue
		}
		key := http.CanonicalHeaderKey(name)
		if key == "Set-Cookie" && strings.Contains(nv.Value, "\n") {
			for _, line := range strings.Split(nv.Value, "\n") {
				if line = strings.TrimSpace(line); line != "" {
					h[key] = append(h[key], line)
				}
			}
			continue
		}
		h[key] = append(h[key], nv.Value)
	}
	return h
}

func initiator(raw json.RawMessage) (typ, from string) {
	if len(raw) == 0 {
		return "", ""
	}
	var obj struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return strings.ToLower(obj.Type), obj.URL
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.ToLower(s), ""
	}
	return "", ""
}

// parseTime reads startedDateTime as the tools write it: RFC 3339 with any
// number of fractional digits (Fiddler writes seven), with or without a
// zone. The zero time when it cannot.
func parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// sortEntries orders entries by start, stably. An entry without a start
// takes the start of the entry before it in the file, so it stays where
// the file put it.
func sortEntries(es []*Entry) {
	var last time.Time
	keys := make(map[*Entry]time.Time, len(es))
	for _, e := range es {
		if !e.Started.IsZero() {
			last = e.Started
		}
		keys[e] = last
	}
	sort.SliceStable(es, func(i, j int) bool { return keys[es[i]].Before(keys[es[j]]) })
}

// kind names a JSON token's kind for an error.
func kind(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '[':
			return "an array"
		case '{':
			return "an object"
		}
		return "'" + t.String() + "'"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "true or false"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

// typeName says a Go type in JSON's words.
func typeName(t string) string {
	switch {
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "float"), strings.HasPrefix(t, "*float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	case strings.Contains(t, "har.raw"), strings.HasPrefix(t, "*har."), strings.HasPrefix(t, "har."), strings.HasPrefix(t, "map["):
		return "an object"
	}
	return t
}

// clip cuts s to n bytes and an ellipsis.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
