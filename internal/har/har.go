// Package har turns a browser recording (HAR 1.2, as Chromium, Firefox and
// Safari export it and as mitmproxy, Charles, Fiddler and Proxyman write it)
// into a stampede scenario: it reads the recording in bounded memory, keeps
// the requests a load needs, shapes them like a person's visit (a login in
// on_start, one task per page), and traces every value the browser sent back
// to the response that handed it out, so the scenario logs in as many users.
package har

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-load/stampede/internal/session"
)

// Log is a recording as read: its entries sorted by the time they started.
type Log struct {
	Version string
	Creator Creator
	Browser Creator
	Pages   []Page
	// Entries are sorted by Started (stable: entries of the same instant,
	// or without one, keep their order in the file).
	Entries []*Entry
	// Warnings name the parts of the file that were read only in part
	// ("log.entries[5].response.content.text: invalid base64: body left
	// out"), in file order.
	Warnings []string
}

// Creator names the tool (or browser) that wrote the recording.
type Creator struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Page is a page of the recording (log.pages).
type Page struct {
	ID      string
	Title   string
	Started time.Time
}

// Entry is one request and its response.
type Entry struct {
	// Index is the entry's position in the file: log.entries[Index].
	Index   int
	Started time.Time
	// Time is the entry's total time; -1 when the recording has none.
	Time     time.Duration
	Pageref  string
	ServerIP string
	Request  Request
	Response Response
	// ResourceType is Chromium's _resourceType in lower case ("document",
	// "xhr", "fetch", "script", "image", "ping", "websocket", ...), ""
	// when the recording does not say.
	ResourceType string
	// Initiator is the type of Chromium's _initiator ("parser", "script",
	// "preflight", "other"), and InitiatorURL its URL.
	Initiator    string
	InitiatorURL string
	// ViaServiceWorker marks a response the page got from its service
	// worker (Chromium's _fetchedViaServiceWorker).
	ViaServiceWorker bool
}

// Path is the JSON path of the entry in the file.
func (e *Entry) Path() string { return "log.entries[" + strconv.Itoa(e.Index) + "]" }

// Request is a recorded request. HTTP/2 pseudo-headers (:method,
// :authority, :path, :scheme) are left out of Headers.
type Request struct {
	Method      string
	URL         *url.URL
	HTTPVersion string
	Headers     http.Header
	Cookies     []Cookie
	Body        *Body
}

// Body is a request's body (postData).
type Body struct {
	MimeType string
	// Text is the body as sent; empty when the recording holds only Params.
	Text string
	// Params are the recording's own parsed fields (form or multipart).
	Params []Param
	// Truncated marks a body cut to ReadOptions.MaxBody.
	Truncated bool
}

// Param is one field of a recorded body.
type Param struct {
	Name, Value string
	// FileName is set for a file field of a multipart body.
	FileName    string
	ContentType string
}

// Cookie is a cookie sent with a request or set by a response.
type Cookie struct {
	Name, Value  string
	Path, Domain string
	HTTPOnly     bool
	Secure       bool
}

// Response is a recorded response.
type Response struct {
	Status      int
	StatusText  string
	HTTPVersion string
	Headers     http.Header
	Cookies     []Cookie
	// RedirectURL is where a 3xx sends the browser, resolved against the
	// request's URL ("" when none).
	RedirectURL string
	// MimeType is the content's media type, lower case, without
	// parameters ("text/html").
	MimeType string
	// Size is the body's size as the recording gives it (content.size);
	// -1 when unknown.
	Size int64
	// Body is the decoded body when it is text the correlation may read
	// (HTML, JSON, XML, JavaScript, plain text), else nil.
	Body []byte
	// BodyLeftOut says why a body is not in Body: "binary", "too large",
	// "invalid base64", "over the recording's budget", or "" when it is
	// there or the recording had none.
	BodyLeftOut string
	// Truncated marks a body cut to ReadOptions.MaxBody.
	Truncated bool
}

// Origin returns scheme://host[:port] of u, lower case, without a default
// port.
func Origin(u *url.URL) string {
	if u == nil {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	scheme := strings.ToLower(u.Scheme)
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port
	}
	return scheme + "://" + host
}

// mediaType returns the media type of a Content-Type value, lower case.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// isTextType reports whether a media type is text the correlation reads.
func isTextType(mt string) bool {
	switch {
	case strings.HasPrefix(mt, "text/") && mt != "text/css":
		return true
	case strings.Contains(mt, "json"), strings.Contains(mt, "xml"), strings.Contains(mt, "javascript"),
		strings.Contains(mt, "ecmascript"), mt == "application/x-www-form-urlencoded":
		return true
	case mt == "":
		return true // unknown: look at it
	}
	return false
}

// IsLoginPage reports whether the entry's response showed a login form.
func IsLoginPage(e *Entry) bool { return session.IsLoginPage(e.Response.Body) }
