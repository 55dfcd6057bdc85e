package session

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/idna"
)

// A browser on an event loop.
//
// Do sends a request through net/http's client on the user's goroutine.
// An event loop (internal/evloop, its Driver) moves the bytes of many users
// on one goroutine instead, and asks the browser only what to send and
// what to make of what came back: Begin gives the first request's bytes;
// Field and BodyPart take the response as it arrives; End stores its
// cookies and either gives the next hop's bytes (a redirect) or the page,
// as Do would have returned it; Abort ends an exchange that failed; URL
// says where the hop under way goes (the loop dials it). What goes on the
// wire is what Do sends: the same headers in the same order, the same
// cookies, redirects followed as net/http's client follows them.

// loopState is what a browser on an event loop keeps for the time of an
// exchange (a request and its redirects).
type loopState struct {
	method     string
	u          *url.URL    // the hop's URL
	body       []byte      // the request's body; nil once a redirect dropped it
	ctype      string      // its Content-Type, from the Request
	header     http.Header // the step's own headers
	referer    string      // the Referer of every hop ("": the previous hop's URL)
	hand       string      // the Cookie header set by hand, less the cookies set since
	handSet    bool        // the request carries a Cookie header (set by hand)
	u0         *url.URL    // the first hop's URL
	strip      bool        // a redirect left the first hop's domain: no sensitive fields since
	noRedirect bool
	keepBody   bool
	redirects  []string // the URLs of the hops after the first
	prev       *url.URL // the URL of the hop before the one under way
	dropped    bool     // a redirect dropped the body
	wire       []byte
	setCookies []string
	location   string
	haveLoc    bool
	full       http.Header // every field, when the browser keeps them (FullHeader)
	utext      string      // u0 as text, when the request gave it (Request.Parsed)
	size       int64
}

// loopStates holds the states of browsers at rest.
var loopStates = sync.Pool{New: func() any { return new(loopState) }}

// FullHeader makes a browser on an event loop keep every header field of
// a page (Page.Header), as Do does, for a scenario that extracts one;
// otherwise Page.Header holds the Location alone, when there is one.
func (b *Browser) FullHeader(on bool) { b.fullHeader = on }

// Begin starts an exchange of a browser on an event loop and returns the
// bytes of its first request, valid until End or Abort. A URL that cannot
// be parsed is an error: nothing is to be sent.
func (b *Browser) Begin(r *Request) ([]byte, error) {
	u := r.Parsed
	if u == nil {
		var err error
		if u, err = url.Parse(r.URL); err != nil {
			return nil, fmt.Errorf("session: build request: %w", err)
		}
	}
	method := r.Method
	if method == "" {
		method = "GET"
	}
	if !validMethod(method) {
		return nil, fmt.Errorf("session: build request: net/http: invalid method %q", method)
	}
	st := b.lx
	if st == nil {
		if st = b.lxIdle; st != nil {
			b.lxIdle = nil
		} else {
			st = loopStates.Get().(*loopState)
		}
		b.lx = st
	}
	wire := st.wire[:0]
	*st = loopState{method: method, u: u, u0: u, body: r.Body, ctype: r.ContentType, header: r.Header,
		noRedirect: r.NoRedirect, keepBody: r.KeepBody, wire: wire}
	// Do sets the Referer to the last page's URL unless the step set one;
	// net/http's client keeps it through the redirects.
	if st.referer = r.Header.Get("Referer"); st.referer == "" && b.Last.URL != nil {
		if st.referer = b.Last.urlText; st.referer == "" {
			st.referer = b.Last.URL.String()
		}
	}
	if r.Parsed != nil {
		st.utext = r.URL
	}
	if v, ok := r.Header["Cookie"]; ok {
		st.handSet = true
		if len(v) > 0 {
			st.hand = v[0]
		}
	}
	if len(r.Body) == 0 {
		st.body = nil
	}
	b.startHop()
	return st.wire, nil
}

// URL is the URL of the hop under way (Begin's, or the redirect End
// returned); nil at rest.
func (b *Browser) URL() *url.URL {
	if b.lx == nil {
		return nil
	}
	return b.lx.u
}

// validMethod is net/http's check of a method: a token.
func validMethod(m string) bool {
	return len(m) > 0 && strings.IndexFunc(m, func(r rune) bool { return !httpguts.IsTokenRune(r) }) < 0
}

// startHop readies the state for the response of a hop and writes its
// request into st.wire.
func (b *Browser) startHop() {
	st := b.lx
	st.setCookies = st.setCookies[:0]
	st.location, st.haveLoc = "", false
	st.full = nil
	st.size = 0
	if b.body == nil {
		b.body = bodyBufs.Get().(*bytes.Buffer)
	}
	b.body.Reset()
	st.wire = b.appendRequest(st.wire[:0])
}

// appendRequest appends the hop's request to w as writeRequest writes the
// http.Request that Do and net/http's client make of it (the
// TestLoopAsDo cases hold the two to the same bytes).
func (b *Browser) appendRequest(w []byte) []byte {
	st := b.lx
	u := st.u
	host, err := httpguts.PunycodeHostPort(u.Host)
	if err != nil || !httpguts.ValidHostHeader(host) {
		host = ""
	}
	host = removeZone(host)
	w = append(w, st.method...)
	w = append(w, ' ')
	w = append(w, u.RequestURI()...)
	w = append(w, " HTTP/1.1\r\nHost: "...)
	w = append(w, host...)
	w = append(w, "\r\n"...)
	ua := UserAgent
	if vs, ok := st.header["User-Agent"]; ok {
		ua = ""
		if len(vs) > 0 {
			ua = vs[0]
		}
	}
	if ua != "" {
		w = append(w, "User-Agent: "...)
		w = appendHeaderValue(w, ua)
		w = append(w, "\r\n"...)
	}
	switch {
	case len(st.body) > 0:
		w = append(w, "Content-Length: "...)
		w = strconv.AppendInt(w, int64(len(st.body)), 10)
		w = append(w, "\r\n"...)
	case st.method == "POST" || st.method == "PUT" || st.method == "PATCH":
		w = append(w, "Content-Length: 0\r\n"...)
	}
	// The other fields, sorted by name as net/http writes them: the step's
	// own, the Content-Type of a body, the Referer and the cookies.
	dropped := st.dropped
	// A URL's user and password go as Basic credentials unless the request
	// carries its own, as net/http's client sends them.
	auth := ""
	if u.User != nil && (st.strip || st.header.Get("Authorization") == "") {
		pw, _ := u.User.Password()
		auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw))
	}
	var keyBuf [16]string
	keys := keyBuf[:0]
	if auth != "" {
		keys = append(keys, "Authorization")
	}
	for k := range st.header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer", "Referer", "Cookie":
			continue
		case "Authorization", "Www-Authenticate", "Cookie2", "Proxy-Authorization", "Proxy-Authenticate":
			if st.strip || k == "Authorization" && auth != "" {
				continue
			}
		case "Content-Type", "Content-Encoding", "Content-Language", "Content-Location":
			if dropped {
				continue
			}
		}
		keys = append(keys, k)
	}
	ctype := ""
	if _, ok := st.header["Content-Type"]; !ok && !dropped && len(st.body) > 0 && st.ctype != "" {
		ctype = st.ctype
		keys = append(keys, "Content-Type")
	}
	referer := st.referer
	if referer == "" && st.prev != nil {
		referer = refererFor(st.prev)
	}
	if referer != "" {
		keys = append(keys, "Referer")
	}
	hand, handSet := "", st.handSet && !st.strip
	if handSet {
		hand = st.hand
	}
	// The Cookie header is built in a buffer on the stack and written from
	// it (a string of it would be one more allocation per request).
	var cookieBuf [256]byte
	cb := b.jar.inner.appendHeader(cookieBuf[:0], u, time.Now(), hand)
	cookie := unsafe.String(unsafe.SliceData(cb), len(cb)) // read only, while cb lives
	if cookie != "" || handSet && len(st.header["Cookie"]) > 0 {
		keys = append(keys, "Cookie")
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		switch {
		case k == "Content-Type" && ctype != "":
			w = appendField(w, k, ctype)
		case k == "Referer":
			w = appendField(w, k, referer)
		case k == "Authorization" && auth != "":
			w = appendField(w, k, auth)
		case k == "Cookie":
			w = appendField(w, k, cookie)
		default:
			for _, v := range st.header[k] {
				w = appendField(w, k, v)
			}
		}
	}
	w = append(w, "\r\n"...)
	return append(w, st.body...)
}

// refererFor is the Referer net/http's client gives a redirect from u:
// its URL without the user and password.
func refererFor(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	return strings.Replace(u.String(), u.User.String()+"@", "", 1)
}

func appendField(w []byte, k, v string) []byte {
	w = append(w, k...)
	w = append(w, ": "...)
	w = appendHeaderValue(w, v)
	return append(w, "\r\n"...)
}

// Field takes a header field of the response under way.
func (b *Browser) Field(name, value []byte) {
	st := b.lx
	if st == nil {
		return
	}
	switch {
	case equalFold(name, "set-cookie"):
		st.setCookies = append(st.setCookies, string(value))
	case equalFold(name, "location"):
		if !st.haveLoc {
			st.location, st.haveLoc = string(value), true
		}
	}
	if b.fullHeader {
		if st.full == nil {
			st.full = make(http.Header, 8)
		}
		st.full.Add(string(name), string(value))
	}
}

// BodyPart takes bytes of the response's body.
func (b *Browser) BodyPart(p []byte) {
	st := b.lx
	if st == nil {
		return
	}
	st.size += int64(len(p))
	if st.keepBody {
		if room := b.maxBody - int64(b.body.Len()); room > 0 {
			b.body.Write(p[:min(int64(len(p)), room)])
		}
	}
}

// End ends the response of a hop with its status: it stores the cookies
// the response set (reporting those refused) and returns either the next
// hop's request (a redirect followed, valid until End or Abort) or the
// page, as Do returns it. An error (a redirect it cannot follow: an
// unparsable Location, the eleventh) ends the exchange.
func (b *Browser) End(status int) (hop []byte, page Page, err error) {
	st := b.lx
	if st == nil {
		return nil, Page{}, errors.New("session: End without Begin")
	}
	if len(st.setCookies) > 0 {
		b.storeCookies(st)
	}
	// In net/http's client's order: a 3xx without a Location is the page;
	// an unparsable one fails, even where the step takes the 3xx as its
	// page (CheckRedirect comes after); the eleventh request is refused.
	if method, follow, keepBody := redirectBehavior(st.method, status); follow && st.haveLoc && st.location != "" && !(st.noRedirect && plainPath(st.location)) {
		next, err := st.u.Parse(st.location)
		if err != nil {
			b.Abort()
			return nil, Page{}, fmt.Errorf("failed to parse Location header %q: %w", st.location, err)
		}
		if !st.noRedirect {
			if len(st.redirects) >= 9 {
				b.Abort()
				return nil, Page{}, errors.New("stopped after 10 redirects")
			}
			st.prev = st.u
			st.redirects = append(st.redirects, next.String())
			if !st.strip && st.u0.Host != next.Host && !domainOrSubdomain(asciiHost(next), asciiHost(st.u0)) {
				// net/http's client stops sending the fields set by hand
				// that may hold credentials (Cookie, Authorization) for
				// the rest of the chain.
				st.strip = true
			}
			st.method, st.u = method, next
			if !keepBody {
				// Once a hop drops the body, no later one sends it, nor the
				// fields about it.
				st.body, st.dropped = nil, true
			}
			b.startHop()
			return st.wire, Page{}, nil
		}
	}
	h := st.full
	if _, ok := h["Transfer-Encoding"]; ok {
		// http.ReadResponse takes these out of a chunked response's header.
		delete(h, "Transfer-Encoding")
		delete(h, "Content-Length")
	}
	if h == nil && st.haveLoc {
		h = http.Header{"Location": {st.location}}
	}
	var redirects []string
	if len(st.redirects) > 0 {
		redirects = slices.Clone(st.redirects)
	}
	p := Page{URL: st.u, Status: status, Header: h, Body: b.body.Bytes(), Size: st.size, Redirects: redirects}
	if st.u == st.u0 {
		p.urlText = st.utext
	}
	b.Last = p
	b.release()
	return nil, p, nil
}

// Abort ends an exchange that failed: no page (Last is left as it was).
func (b *Browser) Abort() { b.release() }

// release gives the exchange's state back to the pool.
func (b *Browser) release() {
	st := b.lx
	if st == nil {
		return
	}
	b.lx = nil
	wire, sc, rd := st.wire[:0], st.setCookies[:0], st.redirects[:0]
	clear(sc[:cap(sc)])
	clear(rd[:cap(rd)])
	if cap(wire) > 64<<10 {
		wire = nil // a large form's is not kept
	}
	*st = loopState{wire: wire, setCookies: sc, redirects: rd}
	b.lxIdle = st // for the next exchange, until the user rests
}

// Pause lets go of what a browser on an event loop keeps between
// exchanges (Rest does too): a user about to think holds none of it.
func (b *Browser) Pause() { b.releaseLoop() }

// releaseLoop gives the state kept between exchanges back to the pool.
func (b *Browser) releaseLoop() {
	if b.lxIdle != nil {
		loopStates.Put(b.lxIdle)
		b.lxIdle = nil
	}
}

// appendHeaderValue appends v as writeHeaderValue writes it.
func appendHeaderValue(w []byte, v string) []byte {
	start, end := 0, len(v)
	for start < end && isHeaderSpace(v[start]) {
		start++
	}
	for end > start && isHeaderSpace(v[end-1]) {
		end--
	}
	v = v[:end]
	if strings.IndexByte(v[start:], '\r') < 0 && strings.IndexByte(v[start:], '\n') < 0 {
		return append(w, v[start:]...) // the common value: one line
	}
	for i := start; i < end; i++ {
		if c := v[i]; c == '\r' || c == '\n' {
			w = append(w, v[start:i]...)
			w = append(w, ' ')
			start = i + 1
		}
	}
	return append(w, v[start:end]...)
}

// storeCookies stores the cookies of the hop's response as cookieTransport
// does: the lines net/http cannot parse reported, the others stored (or
// refused, and reported, by the jar), and a hand-set cookie they replace
// left out of the next hops.
func (b *Browser) storeCookies(st *loopState) {
	if _, ok := jarHost(st.u); ok && b.jar.refused != nil {
		var now time.Time
		for _, line := range st.setCookies {
			name, attr, why := parseSetCookieError(line)
			if why == "" {
				continue
			}
			if now.IsZero() {
				now = time.Now()
			}
			b.jar.refused(CookieRefusal{Time: now, Name: clipName(name), Attribute: attr, Reason: RefusedInvalid,
				URL: responseURL(st.u), Detail: "unparsable Set-Cookie line (" + why + ") sent"})
		}
	}
	cs := make([]http.Cookie, len(st.setCookies))
	rc := make([]*http.Cookie, 0, len(st.setCookies))
	for i, line := range st.setCookies {
		if parseSetCookie(line, &cs[i]) {
			rc = append(rc, &cs[i])
		}
	}
	if len(rc) == 0 {
		return
	}
	b.jar.SetCookies(st.u, rc)
	if st.hand != "" {
		st.hand = withoutCookies(st.hand, rc)
	}
}

// asciiHost is the host of u as net/http's client compares hosts on a
// redirect: its IDNA ASCII form.
func asciiHost(u *url.URL) string {
	h := u.Hostname()
	if isASCII(h) {
		return h // as net/http: an ASCII host as it is, case included
	}
	if a, err := idna.Lookup.ToASCII(h); err == nil {
		return a
	}
	return h
}

// domainOrSubdomain reports whether sub is parent or a subdomain of it, as
// net/http's isDomainOrSubdomain.
func domainOrSubdomain(sub, parent string) bool {
	if sub == parent {
		return true
	}
	if strings.ContainsAny(sub, ":%") || !strings.HasSuffix(sub, parent) {
		return false
	}
	return sub[len(sub)-len(parent)-1] == '.'
}

// redirectBehavior is net/http's: 301, 302 and 303 follow with GET (HEAD
// stays HEAD) and no body; 307 and 308 with the same method and body.
func redirectBehavior(method string, status int) (next string, follow, keepBody bool) {
	switch status {
	case 301, 302, 303:
		if method != "GET" && method != "HEAD" {
			return "GET", true, false
		}
		return method, true, false
	case 307, 308:
		return method, true, true
	}
	return method, false, false
}
