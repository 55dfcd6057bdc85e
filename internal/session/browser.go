// Package session is a virtual user's browser: its own cookie jar (which
// refuses the cookies a browser refuses, and says which: CookieRefusal),
// redirects, forms with their hidden inputs, and per-phase timings of every
// request through net/http/httptrace.
package session

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// UserAgent is sent with every request unless a step sets its own.
const UserAgent = "stampede/0.1 (+load test)"

// Hosts maps host names to the addresses to dial instead, like curl's
// --resolve or an /etc/hosts entry: the request keeps the name (Host header,
// cookies, which browsers treat as secure only on https, localhost and
// loopback addresses) while the connection goes to the address.
type Hosts map[string]string

// Map returns hostport with its host replaced when h maps it.
func (h Hosts) Map(hostport string) string {
	if len(h) == 0 {
		return hostport
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	if ip, ok := h[host]; ok {
		return net.JoinHostPort(ip, port)
	}
	return hostport
}

// NewTransport returns the transport shared by every virtual user of a run:
// keep-alive connections, up to maxConns idle per host (one per user), no
// compression negotiation (bodies are measured as served), and hosts
// dialled at the addresses hosts maps them to.
func NewTransport(maxConns int, insecure bool, hosts Hosts) *http.Transport {
	if maxConns < 2 {
		maxConns = 2
	}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           dialMapped(newDialer(), hosts),
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   maxConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: insecure}, //nolint:gosec // opt-in flag for self-signed test targets
		ExpectContinueTimeout: time.Second,
		WriteBufferSize:       4 << 10,
		ReadBufferSize:        4 << 10,
	}
}

// Browser is one virtual user's browser. It is not safe for concurrent use:
// each virtual user owns one.
type Browser struct {
	client  http.Client
	cookies cookieTransport // the client's transport
	// direct: the transport is a UserTransport, which takes the request's
	// deadline and times its phases through a requestCtx.
	direct  bool
	timeout time.Duration // of each request, redirects included
	jar     *jar
	body    *bytes.Buffer // from bodyBufs; nil at rest
	maxBody int64
	// hop is the state of the request under way, for checkRedirect (so
	// that the client's CheckRedirect is one method value made once, not
	// a closure a request): from doStates for the time of Do, nil at rest,
	// a pointer so that a user in think time holds 8 bytes of it.
	hop *doState
	// lx is the exchange under way on an event loop (loop.go), nil at
	// rest; fullHeader keeps every header field of its pages.
	lx         *loopState
	lxIdle     *loopState // kept between exchanges, until Rest
	fullHeader bool
	// Last is the previous response, for submit_form and extract.
	Last Page
}

// doState is what Do keeps for the time of one request.
type doState struct {
	noRedirect bool
	redirects  []string
	ph         *phases
	rc         *requestCtx
	lim        io.LimitedReader // reads a kept body up to maxBody
}

// doStates holds the doStates of browsers at rest.
var doStates = sync.Pool{New: func() any { return new(doState) }}

// userAgent is every request's User-Agent value, shared: net/http copies
// a header's values when it copies the header (redirects), never writes
// into them, and a scenario's own User-Agent replaces the slice.
var userAgent = []string{UserAgent}

// checkRedirect is the client's CheckRedirect: it stops at the first
// response when the request asked so (the response is then the page),
// after 10 redirects as net/http's default does, and otherwise records
// the hop and starts the timing of its phases afresh.
func (b *Browser) checkRedirect(nr *http.Request, via []*http.Request) error {
	st := b.hop
	if st.noRedirect {
		return http.ErrUseLastResponse
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	st.redirects = append(st.redirects, nr.URL.String())
	if st.ph != nil {
		st.ph.reset()
	} else if st.rc != nil {
		st.rc.ph = directPhases{}
	}
	return nil
}

// phases records the httptrace callbacks of one request. net/http calls
// some of them from its own goroutines (a dial may even finish after the
// request took another idle connection), so every field is atomic and each
// request gets its own phases.
type phases struct {
	dialStart, connDone, wrote, firstByte atomic.Int64 // unix nanos
	reused                                atomic.Bool
}

func (p *phases) trace() *httptrace.ClientTrace {
	now := func(a *atomic.Int64) { a.Store(time.Now().UnixNano()) }
	return &httptrace.ClientTrace{
		ConnectStart: func(_, _ string) { now(&p.dialStart) },
		GotConn: func(i httptrace.GotConnInfo) {
			p.reused.Store(i.Reused)
			now(&p.connDone)
		},
		WroteRequest:         func(httptrace.WroteRequestInfo) { now(&p.wrote) },
		GotFirstResponseByte: func() { now(&p.firstByte) },
	}
}

// reset clears the phases before following a redirect.
func (p *phases) reset() {
	p.dialStart.Store(0)
	p.connDone.Store(0)
	p.wrote.Store(0)
	p.firstByte.Store(0)
	p.reused.Store(false)
}

// Page is a response as the browser saw it after following redirects.
type Page struct {
	// URL is the final URL, after redirects.
	URL *url.URL
	// Status is the final status code.
	Status int
	// Header is the final response's header.
	Header http.Header
	// Body is the final body; it is reused by the next request, so copy
	// what must outlive it.
	Body []byte
	// Size is the body's size in bytes (also when the body was discarded).
	Size int64
	// Redirects lists the URLs redirected through, in order.
	Redirects []string
	// urlText is URL as text when the browser on a loop has it without
	// String (the request's own URL, not redirected): the next request's
	// Referer.
	urlText string
}

// Timing is the per-phase timing of one request.
type Timing struct {
	// Connect is the time spent dialling, TLS included; 0 on a reused connection.
	Connect time.Duration
	// TTFB runs from the request being written to the first response byte.
	TTFB time.Duration
	// Reused reports whether a kept-alive connection was used.
	Reused bool
}

// Options configure a Browser. The zero value is valid.
type Options struct {
	// Transport is shared by the run's browsers; nil uses a new one.
	Transport http.RoundTripper
	// Timeout bounds each request, redirects included; 0 means 60 s.
	Timeout time.Duration
	// MaxBody caps the bytes of a body kept for checks (the rest is
	// counted, not kept); 0 means 8 MiB.
	MaxBody int64
	// CookieRefused, if not nil, is called with every cookie a response
	// sets that the browser refuses (see CookieRefusal), on the goroutine
	// that called Do, before Do returns. A refused cookie is never stored,
	// whether or not it is reported.
	CookieRefused func(CookieRefusal)
}

// New returns a browser with an empty cookie jar.
func New(o Options) *Browser {
	b := &Browser{jar: newJar(o.CookieRefused), maxBody: o.MaxBody}
	if b.maxBody <= 0 {
		b.maxBody = 8 << 20
	}
	rt := o.Transport
	if rt == nil {
		rt = NewTransport(2, false, nil)
	}
	to := o.Timeout
	if to <= 0 {
		to = 60 * time.Second
	}
	// The cookies are the transport's business, not the client's (Jar):
	// see cookieTransport.
	b.cookies = cookieTransport{rt: rt, jar: b.jar}
	_, b.direct = rt.(*UserTransport)
	// The timeout goes on each request's context, not on the client:
	// http.Client's Timeout starts a goroutine and a timer a request for
	// any transport but *http.Transport.
	b.timeout = to
	b.client = http.Client{Transport: &b.cookies, CheckRedirect: b.checkRedirect}
	return b
}

// Jar returns the browser's cookie jar.
func (b *Browser) Jar() http.CookieJar { return b.jar }

// Cookie returns the value of the named cookie the browser would send to u.
func (b *Browser) Cookie(u *url.URL, name string) (string, bool) {
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value, true
		}
	}
	return "", false
}

// Request is one request of a step.
type Request struct {
	Method string
	URL    string
	// Parsed, when not nil, is URL parsed, which Begin then does not parse
	// again (Do does); it is only read, and URL must be its String().
	Parsed *url.URL
	Header http.Header
	Body   []byte
	// ContentType is set when Body is not empty.
	ContentType string
	// NoRedirect returns a 3xx as it is instead of following it.
	NoRedirect bool
	// KeepBody keeps the body for checks, forms and extraction; otherwise
	// it is read and counted only.
	KeepBody bool
}

// Do sends the request and reads the whole response. The error is a
// transport failure (no response); HTTP statuses are not errors.
func (b *Browser) Do(ctx context.Context, r *Request) (Page, Timing, error) {
	var tm Timing
	var ph *phases
	var rc *requestCtx
	if b.direct {
		rc = &requestCtx{Context: ctx, deadline: time.Now().Add(b.timeout)}
		ctx = rc
	} else {
		ph = &phases{}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.timeout)
		defer cancel()
		ctx = httptrace.WithClientTrace(ctx, ph.trace())
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, nil)
	if err != nil {
		return Page{}, tm, fmt.Errorf("session: build request: %w", err)
	}
	if len(r.Body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(r.Body))
		req.ContentLength = int64(len(r.Body))
		body := r.Body
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		if r.ContentType != "" {
			req.Header.Set("Content-Type", r.ContentType)
		}
	}
	req.Header["User-Agent"] = userAgent
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if b.Last.URL != nil && req.Header.Get("Referer") == "" {
		// Browsers send the Referer; Django's CSRF check needs it over HTTPS.
		req.Header.Set("Referer", b.Last.URL.String())
	}
	st := doStates.Get().(*doState)
	st.noRedirect, st.ph, st.rc = r.NoRedirect, ph, rc
	b.hop = st
	// The request's phases are not kept while the user thinks (nor by the
	// pool); nor is a hand-set cookie.
	defer func() {
		*st = doState{}
		doStates.Put(st)
	}()
	b.cookies.hand, b.cookies.handChanged = req.Header.Get("Cookie"), false
	resp, err := b.client.Do(req)
	b.hop = nil
	redirects := st.redirects
	b.cookies.hand, b.cookies.handChanged = "", false
	if err != nil {
		return Page{}, tm, err
	}
	defer resp.Body.Close()
	if b.body == nil {
		b.body = bodyBufs.Get().(*bytes.Buffer)
	}
	b.body.Reset()
	var n int64
	if r.KeepBody {
		st.lim = io.LimitedReader{R: resp.Body, N: b.maxBody}
		n, err = b.body.ReadFrom(&st.lim)
		if err == nil {
			var m int64
			m, err = io.Copy(io.Discard, resp.Body)
			n += m
		}
	} else {
		n, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return Page{}, tm, err
	}
	var ds, cd, wr, fb int64
	if ph != nil {
		ds, cd, wr, fb = ph.dialStart.Load(), ph.connDone.Load(), ph.wrote.Load(), ph.firstByte.Load()
		tm.Reused = ph.reused.Load()
	} else {
		ds, cd, wr, fb, tm.Reused = rc.ph.dialStart, rc.ph.connDone, rc.ph.wrote, rc.ph.firstByte, rc.ph.reused
	}
	if ds != 0 && cd > ds && !tm.Reused {
		tm.Connect = time.Duration(cd - ds)
	}
	if wr != 0 && fb > wr {
		tm.TTFB = time.Duration(fb - wr)
	}
	p := Page{URL: resp.Request.URL, Status: resp.StatusCode, Header: resp.Header, Body: b.body.Bytes(), Size: n, Redirects: redirects}
	b.Last = p
	return p, tm, nil
}

// bodyBufs holds the body buffers of browsers at rest (Rest).
var bodyBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Rest lets go of the last page's body and header, keeping its URL (the
// next request's Referer), status and size: a user in think time keeps
// its cookies, not its page. Last.Body is nil afterwards.
func (b *Browser) Rest() {
	b.releaseLoop()
	if b.body != nil {
		if b.body.Cap() <= 1<<20 {
			// A buffer grown for a large page is left to the collector.
			b.body.Reset()
			bodyBufs.Put(b.body)
		}
		b.body = nil
	}
	b.Last.Body, b.Last.Header, b.Last.Redirects = nil, nil, nil
}

// IsTimeout reports whether a transport error was a timeout (client
// deadline or the context's).
func IsTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return strings.Contains(err.Error(), "Client.Timeout exceeded")
}

// Describe turns a transport error into a short failure reason without the
// URL (which can carry secrets in its query): "connection refused",
// "connection reset by peer", "EOF", "timeout".
func Describe(err error) string {
	if err == nil {
		return ""
	}
	if IsTimeout(err) {
		return "timeout"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	s := err.Error()
	for _, k := range []string{"connection refused", "connection reset by peer", "broken pipe", "no such host", "network is unreachable", "server closed idle connection", "EOF"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		return s[i+2:]
	}
	return s
}
