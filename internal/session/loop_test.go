package session

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests of this file hold a browser on an event loop (Begin, Field,
// BodyPart, End) to Do over a UserTransport: for each case, one browser
// sends the case's requests with Do and another, in the same starting
// state, through Begin/End, the test itself carrying the bytes to a
// loopback server and back. The server records every request's bytes,
// which must be the same, and so must the pages, the errors, the cookies
// the jars then hold and the cookie refusals reported.

// asDoResp is a scripted response. Its header lines may hold $BASE (the
// server's http://host:port), $HOSTPORT, $PORT, $OTHER (another server's
// base: another origin) and $ALT (http://127.0.0.2:port).
type asDoResp struct {
	status  int
	header  []string // "Name: value" lines
	body    string
	chunked bool
}

// asDoServer is a loopback HTTP/1.1 server answering each request by its
// request-URI, with keep-alive, and recording the bytes of each request.
type asDoServer struct {
	ln     net.Listener
	routes map[string]asDoResp
	subst  *strings.Replacer // set before the first request

	mu    sync.Mutex
	log   []string
	conns []net.Conn
	wg    sync.WaitGroup
}

func newAsDoServer(t *testing.T, routes map[string]asDoResp) *asDoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &asDoServer{ln: ln, routes: routes}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *asDoServer) port() string {
	return strconv.Itoa(s.ln.Addr().(*net.TCPAddr).Port)
}

// take returns the requests recorded since the last call.
func (s *asDoServer) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.log
	s.log = nil
	return l
}

func (s *asDoServer) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		raw, err := asDoReadRequest(br)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.log = append(s.log, string(raw))
		s.mu.Unlock()
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
		resp, ok := s.routes[req.RequestURI]
		if !ok {
			resp = asDoResp{status: 200, header: []string{"Content-Type: text/plain; charset=utf-8"}, body: "page " + req.RequestURI}
		}
		if _, err := c.Write(resp.bytes(req.Method, s.subst)); err != nil {
			return
		}
	}
}

// asDoReadRequest reads one request's exact bytes: the header and a body
// of its Content-Length.
func asDoReadRequest(br *bufio.Reader) ([]byte, error) {
	var raw []byte
	n := 0
	for {
		line, err := br.ReadBytes('\n')
		raw = append(raw, line...)
		if err != nil {
			return nil, err
		}
		if string(line) == "\r\n" || string(line) == "\n" {
			break
		}
		if name, v, ok := strings.Cut(string(line), ":"); ok && strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			n, err = strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return nil, err
			}
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, err
	}
	return append(raw, body...), nil
}

func (r asDoResp) bytes(method string, subst *strings.Replacer) []byte {
	var w bytes.Buffer
	fmt.Fprintf(&w, "HTTP/1.1 %d %s\r\n", r.status, http.StatusText(r.status))
	for _, h := range r.header {
		w.WriteString(subst.Replace(h))
		w.WriteString("\r\n")
	}
	if r.chunked {
		w.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		if method == "HEAD" {
			return w.Bytes()
		}
		for b := r.body; len(b) > 0; {
			n := min(len(b), 10)
			fmt.Fprintf(&w, "%x\r\n%s\r\n", n, b[:n])
			b = b[n:]
		}
		w.WriteString("0\r\n\r\n")
		return w.Bytes()
	}
	fmt.Fprintf(&w, "Content-Length: %d\r\n\r\n", len(r.body))
	if method != "HEAD" {
		w.WriteString(r.body)
	}
	return w.Bytes()
}

// asDoResult is what a request gave: a page or an error, and the Last
// page's URL the browser then holds.
type asDoResult struct {
	err       error
	url       string
	status    int
	body      []byte
	size      int64
	redirects []string
	header    http.Header
	last      string
}

func asDoResultOf(b *Browser, p Page, err error) asDoResult {
	r := asDoResult{err: err}
	if err == nil {
		if p.URL != nil {
			r.url = p.URL.String()
		}
		r.status, r.body, r.size, r.redirects = p.Status, bytes.Clone(p.Body), p.Size, p.Redirects
		r.header = p.Header.Clone()
	}
	if b.Last.URL != nil {
		r.last = b.Last.URL.String()
	}
	return r
}

// errAsDoHarness marks a failure of the test's own carrying of the bytes.
var errAsDoHarness = errors.New("test harness")

// asDoConns are the loop's connections, one per host:port, kept alive.
type asDoConns struct {
	m map[string]*asDoConn
}

type asDoConn struct {
	c  net.Conn
	br *bufio.Reader
}

func (cs *asDoConns) get(u *url.URL) (*asDoConn, error) {
	port := u.Port()
	if port == "" {
		port = "80"
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	if c, ok := cs.m[strings.ToLower(addr)]; ok {
		return c, nil
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if cs.m == nil {
		cs.m = map[string]*asDoConn{}
	}
	cc := &asDoConn{c: c, br: bufio.NewReader(c)}
	cs.m[strings.ToLower(addr)] = cc
	return cc, nil
}

func (cs *asDoConns) close() {
	for _, c := range cs.m {
		_ = c.c.Close()
	}
}

// asDoLoop does r with b on an event loop's terms: the bytes Begin and End
// give are written to a connection to the hop's URL (b.URL), each response
// read with net/http and given to Field, BodyPart and End. A dial that
// fails aborts the exchange, as the loop's would.
func asDoLoop(b *Browser, conns *asDoConns, r *Request) (Page, error) {
	wire, err := b.Begin(r)
	if err != nil {
		return Page{}, err
	}
	for {
		u := b.URL()
		if u == nil {
			b.Abort()
			return Page{}, fmt.Errorf("%w: URL() is nil during an exchange", errAsDoHarness)
		}
		hreq, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(wire)))
		if err != nil {
			b.Abort()
			return Page{}, fmt.Errorf("%w: the loop's request does not parse: %v: %q", errAsDoHarness, err, wire)
		}
		conn, err := conns.get(u)
		if err != nil {
			b.Abort()
			return Page{}, err
		}
		if _, err := conn.c.Write(wire); err != nil {
			b.Abort()
			return Page{}, fmt.Errorf("%w: write: %v", errAsDoHarness, err)
		}
		resp, err := http.ReadResponse(conn.br, hreq)
		if err != nil {
			b.Abort()
			return Page{}, fmt.Errorf("%w: read response: %v", errAsDoHarness, err)
		}
		for k, vs := range resp.Header {
			for _, v := range vs {
				b.Field([]byte(k), []byte(v))
			}
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			b.Abort()
			return Page{}, fmt.Errorf("%w: read body: %v", errAsDoHarness, err)
		}
		for len(body) > 0 { // in pieces, as a loop gets them
			n := min(len(body), 7)
			b.BodyPart(body[:n])
			body = body[n:]
		}
		hop, page, err := b.End(resp.StatusCode)
		if err != nil {
			return Page{}, err
		}
		if hop == nil {
			if b.URL() != nil {
				return Page{}, fmt.Errorf("%w: URL() is not nil at rest", errAsDoHarness)
			}
			return page, nil
		}
		wire = hop
	}
}

// asDoCase is a sequence of requests (steps) done by both paths, after
// setup requests done with Do by both browsers.
type asDoCase struct {
	name    string
	host    string // of $BASE: 127.0.0.1 unless set
	routes  map[string]asDoResp
	setup   []Request
	steps   []Request
	maxBody int64
	// fail: the last step fails on both paths with an error holding it.
	fail string
	// check holds Do's result of a step to what the case is about, so
	// that the case tests what it says.
	check func(t *testing.T, step int, reqs []string, r asDoResult, refused []CookieRefusal)
}

func asDoGet(u string) Request { return Request{URL: u, KeepBody: true} }

func asDoRedirect(status int, loc string, more ...string) asDoResp {
	return asDoResp{status: status, header: append([]string{"Location: " + loc}, more...), body: "moved"}
}

// asDoHas reports whether the request holds the header line.
func asDoHas(req, line string) bool {
	head, _, _ := strings.Cut(req, "\r\n\r\n")
	return strings.Contains(head+"\r\n", "\r\n"+line+"\r\n")
}

// asDoField returns the values of the request's field name, in order.
func asDoField(req, name string) []string {
	head, _, _ := strings.Cut(req, "\r\n\r\n")
	var vs []string
	for _, l := range strings.Split(head, "\r\n")[1:] {
		if k, v, ok := strings.Cut(l, ": "); ok && k == name {
			vs = append(vs, v)
		}
	}
	return vs
}

func asDoReqs(t *testing.T, reqs []string, n int) {
	t.Helper()
	if len(reqs) != n {
		t.Fatalf("Do sent %d requests, want %d: %q", len(reqs), n, reqs)
	}
}

func asDoCases() []asDoCase {
	form := []byte("a=1&b=two+words&c=%C3%A9")
	const formType = "application/x-www-form-urlencoded"
	post := func(u string) Request {
		return Request{Method: "POST", URL: u, Body: form, ContentType: formType, KeepBody: true}
	}
	big := strings.Repeat("0123456789", 5) + "tail"
	// A chain of n redirects: /<p>0 to /<p>1 … to /<p>n, a page.
	redirects := func(p string, n int) map[string]asDoResp {
		m := map[string]asDoResp{}
		for i := range n {
			loc := "/" + p + strconv.Itoa(i+1)
			if i%2 == 1 {
				loc = "$BASE" + loc
			}
			m["/"+p+strconv.Itoa(i)] = asDoRedirect(301+i%3, loc)
		}
		return m
	}
	return []asDoCase{
		{
			name:  "plain GET",
			steps: []Request{asDoGet("$BASE/page")},
			check: func(t *testing.T, _ int, reqs []string, r asDoResult, _ []CookieRefusal) {
				asDoReqs(t, reqs, 1)
				if !strings.HasPrefix(reqs[0], "GET /page HTTP/1.1\r\nHost: 127.0.0.1:") || !asDoHas(reqs[0], "User-Agent: "+UserAgent) {
					t.Errorf("request %q", reqs[0])
				}
				if r.status != 200 || string(r.body) != "page /page" {
					t.Errorf("page %d %q", r.status, r.body)
				}
			},
		},
		{name: "GET without KeepBody, root, no path", steps: []Request{{URL: "$BASE"}, {Method: "GET", URL: "$BASE/"}}},
		{
			name:  "GET with a query",
			steps: []Request{asDoGet("$BASE/search?q=a+b&x=%2F%3F&empty=&u=%C3%A9#frag")},
			check: func(t *testing.T, _ int, reqs []string, r asDoResult, _ []CookieRefusal) {
				if !strings.HasPrefix(reqs[0], "GET /search?q=a+b&x=%2F%3F&empty=&u=%C3%A9 HTTP/1.1\r\n") {
					t.Errorf("request %q", reqs[0])
				}
			},
		},
		{
			name:  "POST a form",
			steps: []Request{post("$BASE/form")},
			check: func(t *testing.T, _ int, reqs []string, _ asDoResult, _ []CookieRefusal) {
				if !asDoHas(reqs[0], "Content-Type: "+formType) || !asDoHas(reqs[0], "Content-Length: "+strconv.Itoa(len(form))) ||
					!strings.HasSuffix(reqs[0], "\r\n\r\n"+string(form)) {
					t.Errorf("request %q", reqs[0])
				}
			},
		},
		{
			name: "body without a ContentType, GET with a body, DELETE",
			steps: []Request{
				{Method: "POST", URL: "$BASE/raw", Body: []byte("raw body")},
				{Method: "GET", URL: "$BASE/getbody", Body: []byte("q"), ContentType: "text/plain"},
				{Method: "DELETE", URL: "$BASE/del"},
				{Method: "DELETE", URL: "$BASE/del", Body: []byte("x"), ContentType: "text/plain"},
			},
		},
		{
			name: "PUT, POST and PATCH without a body",
			steps: []Request{
				{Method: "PUT", URL: "$BASE/put", ContentType: formType},
				{Method: "POST", URL: "$BASE/post", Body: []byte{}},
				{Method: "PATCH", URL: "$BASE/patch"},
				{Method: "OPTIONS", URL: "$BASE/opt"},
			},
			check: func(t *testing.T, step int, reqs []string, _ asDoResult, _ []CookieRefusal) {
				want := step < 3
				if asDoHas(reqs[0], "Content-Length: 0") != want || asDoHas(reqs[0], "Content-Type: "+formType) {
					t.Errorf("request %q", reqs[0])
				}
			},
		},
		{
			name: "custom headers",
			steps: []Request{{URL: "$BASE/custom", KeepBody: true, Header: http.Header{
				"User-Agent": {"my-agent/1.0"},
				"X-Custom":   {"one", "two"},
				"Referer":    {"http://example.test/from"},
				"Cookie":     {"hand=1; other=2"},
				"Accept":     {"text/html"},
				"Zeta":       {"last"},
			}}},
			check: func(t *testing.T, _ int, reqs []string, _ asDoResult, _ []CookieRefusal) {
				r := reqs[0]
				if !asDoHas(r, "User-Agent: my-agent/1.0") || !asDoHas(r, "X-Custom: one") || !asDoHas(r, "X-Custom: two") ||
					!asDoHas(r, "Referer: http://example.test/from") || !strings.Contains(r, "\r\nCookie: hand=1; other=2") {
					t.Errorf("request %q", r)
				}
			},
		},
		{
			name: "no User-Agent, headers of no value",
			steps: []Request{
				{URL: "$BASE/noua", Header: http.Header{"User-Agent": {""}, "X-Empty": {""}, "X-None": {}}},
				{URL: "$BASE/noua2", Header: http.Header{"User-Agent": nil, "Cookie": {}, "Referer": {""}}},
				{URL: "$BASE/emptycookie", Header: http.Header{"Cookie": {""}}},
			},
		},
		{
			name: "header keys not canonical, values to clean, fields not to send",
			steps: []Request{{URL: "$BASE/keys", Header: http.Header{
				"x-lower":           {"v"},
				"referer":           {"lower-referer"},
				"cookie":            {"lower=1"},
				"user-agent":        {"lower-agent"},
				"content-type":      {"text/x"},
				"X-Spaced":          {"  padded \t"},
				"X-Newline":         {"a\r\nb\nc"},
				"Bad Key":           {"dropped"},
				"Host":              {"other.test"},
				"Content-Length":    {"99"},
				"Transfer-Encoding": {"chunked"},
				"Connection":        {"keep-alive"},
			}}},
		},
		{
			name:   "explicit Content-Type with a body and ContentType",
			routes: map[string]asDoResp{"/ct": asDoRedirect(307, "/ct2")},
			steps:  []Request{{Method: "POST", URL: "$BASE/ct", Body: form, ContentType: formType, Header: http.Header{"Content-Type": {"application/json"}}}},
		},
		{
			name: "response sets cookies, the next requests carry them",
			routes: map[string]asDoResp{
				"/login": {status: 200, header: []string{
					"Set-Cookie: sid=abc123; Path=/; HttpOnly; Max-Age=3600",
					"Set-Cookie: app=1; Path=/app",
					"Set-Cookie: gone=x; Max-Age=0",
					"Set-Cookie: q=\"quoted value\"; Path=/",
					"Set-Cookie: sec=1; Secure; SameSite=Lax",
				}, body: "welcome"},
				"/logout": {status: 200, header: []string{"Set-Cookie: sid=; Path=/; Max-Age=0", "Set-Cookie: app=2; Path=/app; Expires=Wed, 21 Oct 2065 07:28:00 GMT"}},
			},
			steps: []Request{asDoGet("$BASE/login"), asDoGet("$BASE/app/home"), asDoGet("$BASE/other"), asDoGet("$BASE/logout"), asDoGet("$BASE/app/home")},
			check: func(t *testing.T, step int, reqs []string, _ asDoResult, _ []CookieRefusal) {
				c := strings.Join(asDoField(reqs[0], "Cookie"), "|")
				switch step {
				case 1:
					if !strings.Contains(c, "app=1") || !strings.Contains(c, "sid=abc123") || strings.Contains(c, "gone") {
						t.Errorf("Cookie %q", c)
					}
				case 2:
					if strings.Contains(c, "app=") || !strings.Contains(c, "sid=abc123") {
						t.Errorf("Cookie %q", c)
					}
				case 4:
					if !strings.Contains(c, "app=2") || strings.Contains(c, "sid=") {
						t.Errorf("Cookie %q", c)
					}
				}
			},
		},
		{
			name:   "302 after POST",
			routes: map[string]asDoResp{"/p302": asDoRedirect(302, "/target")},
			steps:  []Request{post("$BASE/p302")},
			check: func(t *testing.T, _ int, reqs []string, r asDoResult, _ []CookieRefusal) {
				asDoReqs(t, reqs, 2)
				if !strings.HasPrefix(reqs[1], "GET /target ") || strings.Contains(reqs[1], "Content-") || !strings.HasSuffix(reqs[1], "\r\n\r\n") {
					t.Errorf("second hop %q", reqs[1])
				}
				if len(r.redirects) != 1 || r.status != 200 {
					t.Errorf("page %+v", r)
				}
			},
		},
		{
			name:   "301 after POST, 303 after PUT and after POST",
			routes: map[string]asDoResp{"/p301": asDoRedirect(301, "/t1"), "/p303": asDoRedirect(303, "/t3")},
			steps:  []Request{post("$BASE/p301"), {Method: "PUT", URL: "$BASE/p303", Body: form, ContentType: formType}, post("$BASE/p303")},
			check: func(t *testing.T, _ int, reqs []string, _ asDoResult, _ []CookieRefusal) {
				asDoReqs(t, reqs, 2)
				if !strings.HasPrefix(reqs[1], "GET /t") || strings.Contains(reqs[1], "Content-") {
					t.Errorf("second hop %q", reqs[1])
				}
			},
		},
		{
			name:   "307 and 308 after POST, 307 after PUT",
			routes: map[string]asDoResp{"/p307": asDoRedirect(307, "/t7"), "/p308": asDoRedirect(308, "/t8")},
			steps: []Request{post("$BASE/p307"), post("$BASE/p308"),
				{Method: "PUT", URL: "$BASE/p307", Body: form, ContentType: formType, Header: http.Header{"Content-Language": {"fr"}}}},
			check: func(t *testing.T, _ int, reqs []string, _ asDoResult, _ []CookieRefusal) {
				asDoReqs(t, reqs, 2)
				if strings.HasPrefix(reqs[1], "GET") || !asDoHas(reqs[1], "Content-Type: "+formType) || !strings.HasSuffix(reqs[1], "\r\n\r\n"+string(form)) {
					t.Errorf("second hop %q", reqs[1])
				}
			},
		},
		{
			name:   "307 after POST without a body",
			routes: map[string]asDoResp{"/p307": asDoRedirect(307, "/t7")},
			steps:  []Request{{Method: "POST", URL: "$BASE/p307", ContentType: formType}},
		},
		{
			// net/http drops the fields of a body (Content-Type, ...) on a
			// redirect that drops the body (301-303), not on a 307 or 308,
			// whether or not there was a body.
			name:   "307 and 308 after a GET with a Content-Type header",
			routes: map[string]asDoResp{"/g307": asDoRedirect(307, "/t7"), "/g308": asDoRedirect(308, "/t8")},
			steps: []Request{
				{URL: "$BASE/g307", Header: http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}}},
				{Method: "DELETE", URL: "$BASE/g308", Header: http.Header{"Content-Language": {"fr"}}},
			},
		},
		{
			name:   "302 after a GET with a Content-Type header",
			routes: map[string]asDoResp{"/g302": asDoRedirect(302, "/t2")},
			steps:  []Request{{URL: "$BASE/g302", Header: http.Header{"Content-Type": {"application/json"}}}},
		},
		{
			name:   "HEAD redirected stays HEAD",
			routes: map[string]asDoResp{"/h": asDoRedirect(302, "/h2"), "/h2": {status: 200, header: []string{"X-H: 1"}, body: "not sent"}},
			steps:  []Request{{Method: "HEAD", URL: "$BASE/h", KeepBody: true}},
			check: func(t *testing.T, _ int, reqs []string, r asDoResult, _ []CookieRefusal) {
				asDoReqs(t, reqs, 2)
				if !strings.HasPrefix(reqs[1], "HEAD /h2 ") || r.size != 0 {
					t.Errorf("second hop %q, size %d", reqs[1], r.size)
				}
			},
		},
		{
			name: "chain of 3 redirects, a cookie set on the way",
			routes: map[string]asDoResp{
				"/c1": asDoRedirect(307, "/c2"),
				"/c2": asDoRedirect(302, "/c3", "Set-Cookie: mid=1; Path=/", "Set-Cookie: deep=2; Path=/c4"),
				"/c3": asDoRedirect(303, "$BASE/c4"),
				"/c4": {status: 200, header: []string{"Set-Cookie: end=3"}, body: "end of chain"},
			},
			steps: []Request{post("$BASE/c1"), asDoGet("$BASE/c4")},
			check: func(t *testing.T, step int, reqs []string, r asDoResult, _ []CookieRefusal) {
				if step == 1 {
					return
				}
				asDoReqs(t, reqs, 4)
				if !strings.Contains(reqs[2], "mid=1") || !strings.Contains(reqs[3], "deep=2") || strings.Contains(reqs[1], "mid=1") {
					t.Errorf("hops %q", reqs)
				}
				if len(r.redirects) != 3 || string(r.body) != "end of chain" {
					t.Errorf("page %+v", r)
				}
			},
		},
		{
			name:   "chain without a Last page: Referer of each hop",
			routes: map[string]asDoResp{"/a1": asDoRedirect(302, "/a2"), "/a2": asDoRedirect(302, "/a3?x=1"), "/a3?x=1": asDoRedirect(302, "/a4")},
			steps:  []Request{asDoGet("$BASE/a1#f")},
		},
		{
			name:   "explicit Referer kept through redirects",
			routes: map[string]asDoResp{"/e1": asDoRedirect(302, "/e2"), "/e2": asDoRedirect(307, "/e3")},
			steps:  []Request{{URL: "$BASE/e1", Header: http.Header{"Referer": {"http://example.test/r"}}}},
			check: func(t *testing.T, _ int, reqs []string, _ asDoResult, _ []CookieRefusal) {
				if !asDoHas(reqs[2], "Referer: http://example.test/r") {
					t.Errorf("last hop %q", reqs[2])
				}
			},
		},
		{
			name:   "hand-set Cookie a redirect's Set-Cookie replaces",
			routes: map[string]asDoResp{"/hr": asDoRedirect(302, "/hr2", "Set-Cookie: sid=new; Path=/"), "/hr2": asDoRedirect(302, "/hr3")},
			steps:  []Request{{URL: "$BASE/hr", Header: http.Header{"Cookie": {"sid=hand; keep=1; zz=9"}}}},
			check: func(t *testing.T, _ int, reqs []string, _ asDoResult, _ []CookieRefusal) {
				asDoReqs(t, reqs, 3)
				if c := strings.Join(asDoField(reqs[1], "Cookie"), "|"); !strings.Contains(c, "sid=new") || strings.Contains(c, "sid=hand") || !strings.Contains(c, "keep=1") {
					t.Errorf("second hop's Cookie %q", c)
				}
			},
		},
		{
			name:   "hand-set Cookie a redirect deletes, others kept",
			routes: map[string]asDoResp{"/hd": asDoRedirect(302, "/hd2", "Set-Cookie: sid=; Path=/; Max-Age=0")},
			steps:  []Request{{URL: "$BASE/hd", Header: http.Header{"Cookie": {"sid=hand; keep=1"}}}},
		},
		{
			name:   "hand-set Cookie a redirect deletes, the only one",
			routes: map[string]asDoResp{"/hd": asDoRedirect(302, "/hd2", "Set-Cookie: sid=; Path=/; Max-Age=0")},
			steps:  []Request{{URL: "$BASE/hd", Header: http.Header{"Cookie": {"sid=hand"}}}},
		},
		{
			name:   "hand-set Cookie a redirect replaces with a cookie of another path",
			routes: map[string]asDoResp{"/hp": asDoRedirect(302, "/hp2", "Set-Cookie: sid=new; Path=/elsewhere")},
			steps:  []Request{{URL: "$BASE/hp", Header: http.Header{"Cookie": {"sid=hand"}}}},
		},
		{
			name:   "hand-set Cookie of several values",
			routes: map[string]asDoResp{"/hm": asDoRedirect(302, "/hm2", "Set-Cookie: a=new")},
			steps:  []Request{{URL: "$BASE/hm", Header: http.Header{"Cookie": {"a=1", "b=2"}}}},
		},
		{
			name:   "3xx without Location",
			routes: map[string]asDoResp{"/noloc": {status: 302, header: []string{"X-Why: none"}, body: "no location"}, "/emptyloc": {status: 301, header: []string{"Location: "}, body: "empty"}},
			steps:  []Request{asDoGet("$BASE/noloc"), post("$BASE/emptyloc")},
			check: func(t *testing.T, _ int, reqs []string, r asDoResult, _ []CookieRefusal) {
				asDoReqs(t, reqs, 1)
				if r.status != 302 && r.status != 301 || r.redirects != nil {
					t.Errorf("page %+v", r)
				}
			},
		},
		{
			name:   "NoRedirect",
			routes: map[string]asDoResp{"/nr": asDoRedirect(302, "/nr2", "Set-Cookie: nr=1")},
			steps:  []Request{{Method: "POST", URL: "$BASE/nr", Body: form, ContentType: formType, NoRedirect: true, KeepBody: true}, {URL: "$BASE/nr", NoRedirect: true}},
			check: func(t *testing.T, _ int, reqs []string, r asDoResult, _ []CookieRefusal) {
				asDoReqs(t, reqs, 1)
				if r.status != 302 || r.header.Get("Location") != "/nr2" {
					t.Errorf("page %+v", r)
				}
			},
		},
		{
			name:   "300 and 304 with a Location are pages",
			routes: map[string]asDoResp{"/m300": asDoRedirect(300, "/x"), "/m304": {status: 304, header: []string{"Location: /x"}}},
			steps:  []Request{asDoGet("$BASE/m300"), asDoGet("$BASE/m304")},
		},
		{
			// net/http's client follows 9 redirects: it stops before the
			// 11th request (CheckRedirect with 10 requests made).
			name:   "9 redirects are followed",
			routes: redirects("n", 9),
			steps:  []Request{asDoGet("$BASE/n0")},
			check: func(t *testing.T, _ int, reqs []string, r asDoResult, _ []CookieRefusal) {
				asDoReqs(t, reqs, 10)
				if len(r.redirects) != 9 {
					t.Errorf("page %+v", r)
				}
			},
		},
		{
			name:   "10 redirects fail",
			routes: redirects("t", 10),
			steps:  []Request{asDoGet("$BASE/t0")},
			fail:   "stopped after 10 redirects",
		},
		{
			name:   "11 redirects fail",
			routes: redirects("r", 11),
			steps:  []Request{asDoGet("$BASE/r0")},
			fail:   "stopped after 10 redirects",
		},
		{
			name: "redirect to another port and back",
			routes: map[string]asDoResp{
				"/away":  asDoRedirect(302, "$OTHER/there", "Set-Cookie: before=1"),
				"/away2": asDoRedirect(307, "$OTHER/bounce"),
				// Served by the other server.
				"/bounce": asDoRedirect(302, "$BASE/home", "Set-Cookie: oc=1; Path=/"),
			},
			steps: []Request{
				asDoGet("$BASE/away"),
				{Method: "POST", URL: "$BASE/away2", Body: form, ContentType: formType, KeepBody: true,
					Header: http.Header{"Cookie": {"hand=1"}, "Authorization": {"Bearer x"}}},
			},
			check: func(t *testing.T, step int, reqs []string, r asDoResult, _ []CookieRefusal) {
				if !strings.Contains(r.url, "/there") && !strings.Contains(r.url, "/home") || len(r.redirects) == 0 {
					t.Errorf("page %+v", r)
				}
			},
		},
		{
			// net/http's client stops sending a hand-set Cookie and
			// Authorization once a redirect leaves the first host (and its
			// subdomains), for the rest of the chain.
			name: "redirect to another host and back",
			host: "localhost",
			routes: map[string]asDoResp{
				"/x1": asDoRedirect(302, "http://127.0.0.1:$PORT/x2", "Set-Cookie: lh=1"),
				"/x2": asDoRedirect(307, "http://localhost:$PORT/x3", "Set-Cookie: ip=1"),
				"/x3": asDoRedirect(302, "/x4"),
			},
			steps: []Request{{Method: "POST", URL: "$BASE/x1", Body: form, ContentType: formType,
				Header: http.Header{"Cookie": {"hand=1"}, "Authorization": {"Bearer x"}, "Proxy-Authorization": {"p"}, "Cookie2": {"c2"}, "Www-Authenticate": {"w"}, "X-Kept": {"k"}}}},
			check: func(t *testing.T, _ int, reqs []string, _ asDoResult, _ []CookieRefusal) {
				asDoReqs(t, reqs, 4)
				if !asDoHas(reqs[0], "Authorization: Bearer x") || !strings.Contains(reqs[0], "\r\nCookie: hand=1") {
					t.Errorf("first hop %q", reqs[0])
				}
				for _, r := range reqs[1:] {
					if strings.Contains(r, "Authorization") || strings.Contains(r, "hand=1") || strings.Contains(r, "Cookie2") || !asDoHas(r, "X-Kept: k") {
						t.Errorf("hop %q", r)
					}
				}
				if strings.Contains(reqs[1], "lh=1") || !strings.Contains(reqs[2], "lh=1") {
					t.Errorf("hops' cookies %q", reqs)
				}
			},
		},
		{
			name:   "redirect to an unreachable host",
			routes: map[string]asDoResp{"/away": asDoRedirect(307, "$ALT/there")},
			steps:  []Request{post("$BASE/away")},
			fail:   "connection refused",
		},
		{
			name: "relative Locations",
			routes: map[string]asDoResp{
				"/a/b/c":      asDoRedirect(302, "../x"),
				"/q/r":        asDoRedirect(302, "?q=1"),
				"/s/t":        asDoRedirect(302, "//$HOSTPORT/abs/path?z"),
				"/u/v":        asDoRedirect(302, "w#frag"),
				"/sp":         asDoRedirect(302, "/with space/é?a=b"),
				"/dots/a/b/c": asDoRedirect(302, "../../../../up"),
			},
			steps: []Request{asDoGet("$BASE/a/b/c"), asDoGet("$BASE/q/r"), asDoGet("$BASE/s/t"), asDoGet("$BASE/u/v"), asDoGet("$BASE/sp"), asDoGet("$BASE/dots/a/b/c")},
			check: func(t *testing.T, step int, reqs []string, r asDoResult, _ []CookieRefusal) {
				want := []string{"/a/x", "/q/r?q=1", "/abs/path?z", "/u/w#frag"}
				if step < len(want) && !strings.HasSuffix(r.url, want[step]) {
					t.Errorf("page URL %q, want …%s", r.url, want[step])
				}
			},
		},
		{
			name:   "unparsable Location",
			routes: map[string]asDoResp{"/badloc": asDoRedirect(302, "http://[::1")},
			steps:  []Request{asDoGet("$BASE/badloc")},
			fail:   "failed to parse Location header",
		},
		{
			name:   "body not kept",
			routes: map[string]asDoResp{"/big": {status: 200, body: big}, "/bigc": {status: 200, body: big, chunked: true}},
			steps:  []Request{{URL: "$BASE/big"}, {URL: "$BASE/bigc"}},
			check: func(t *testing.T, _ int, _ []string, r asDoResult, _ []CookieRefusal) {
				if len(r.body) != 0 || r.size != int64(len(big)) {
					t.Errorf("body %q size %d", r.body, r.size)
				}
			},
		},
		{
			name:    "body over MaxBody",
			maxBody: 10,
			routes:  map[string]asDoResp{"/big": {status: 200, body: big}, "/bigc": {status: 200, body: big, chunked: true}, "/small": {status: 200, body: "0123456789"}},
			steps:   []Request{asDoGet("$BASE/big"), asDoGet("$BASE/bigc"), asDoGet("$BASE/small")},
			check: func(t *testing.T, _ int, _ []string, r asDoResult, _ []CookieRefusal) {
				if string(r.body) != big[:10] {
					t.Errorf("body %q size %d", r.body, r.size)
				}
			},
		},
		{
			name:   "redirect with a large body, then a chunked one",
			routes: map[string]asDoResp{"/lb": {status: 302, header: []string{"Location: /lb2"}, body: strings.Repeat("x", 5000)}, "/lb2": {status: 302, header: []string{"Location: /lb3"}, body: big, chunked: true}},
			steps:  []Request{asDoGet("$BASE/lb"), asDoGet("$BASE/lb")},
		},
		{
			name: "unparsable and refused Set-Cookie lines",
			routes: map[string]asDoResp{
				"/bad": {status: 200, header: []string{
					"Set-Cookie: noequals",
					"Set-Cookie: bad name=1",
					"Set-Cookie: v=has\"quote",
					"Set-Cookie: ",
					"Set-Cookie: dom=1; Domain=example.com",
					"Set-Cookie: __Host-x=1; Path=/",
					"Set-Cookie: ok=1",
				}},
				"/badr?token=x": asDoRedirect(302, "/bad2?secret=1", "Set-Cookie: =novalue", "Set-Cookie: fine=2"),
			},
			steps: []Request{asDoGet("$BASE/bad"), asDoGet("$BASE/badr?token=x")},
			check: func(t *testing.T, step int, _ []string, _ asDoResult, refused []CookieRefusal) {
				if len(refused) < 2-step {
					t.Errorf("step %d: refusals %+v", step, refused)
				}
			},
		},
		{
			name:   "many header fields of a response",
			routes: map[string]asDoResp{"/h": {status: 201, header: []string{"X-A: 1", "X-A: 2", "x-lower: v", "Set-Cookie: a=1", "Set-Cookie: b=2", "Cache-Control: no-store", "Location: /not-followed", "Content-Type: text/html"}, body: "<p>hi</p>"}},
			steps:  []Request{asDoGet("$BASE/h")},
		},
		{
			// net/http's client sends a URL's user and password as basic
			// authorization, and leaves them out of a redirect's Referer.
			name:   "URL with a user and password",
			routes: map[string]asDoResp{"/ui": asDoRedirect(302, "/ui2")},
			steps:  []Request{asDoGet("http://user:pw@$HOSTPORT/ui")},
		},
		{
			// net/http's client drops a hand-set Cookie on a redirect to
			// another host name, compared with its case.
			name:   "redirect to the same host in capitals",
			host:   "localhost",
			routes: map[string]asDoResp{"/lc": asDoRedirect(302, "http://LOCALHOST:$PORT/lc2")},
			steps:  []Request{{URL: "$BASE/lc", Header: http.Header{"Cookie": {"hand=1"}, "Authorization": {"Bearer x"}}}},
		},
	}
}

// TestLoopAsDo holds a browser on an event loop to Do over a UserTransport:
// the same bytes on the wire for every hop, the same page or failure, the
// same cookies kept, the same refusals reported; from a fresh browser and
// from one with a Last page and cookies, keeping every header field of a
// page (FullHeader) or not.
func TestLoopAsDo(t *testing.T) {
	for _, tc := range asDoCases() {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []struct {
				name        string
				state, full bool
			}{{"fresh", false, false}, {"state", true, false}, {"fresh/full", false, true}, {"state/full", true, true}} {
				t.Run(v.name, func(t *testing.T) {
					runAsDo(t, tc, v.state, v.full)
				})
			}
		})
	}
}

func runAsDo(t *testing.T, tc asDoCase, state, full bool) {
	routes := map[string]asDoResp{
		"/start": {status: 200, header: []string{"Set-Cookie: st=1; Path=/", "Set-Cookie: deep=0; Path=/c4"}, body: "start"},
	}
	for k, v := range tc.routes {
		routes[k] = v
	}
	srv := newAsDoServer(t, routes)
	other := newAsDoServer(t, routes)
	host := tc.host
	if host == "" {
		host = "127.0.0.1"
	}
	hostport := net.JoinHostPort(host, srv.port())
	base := "http://" + hostport
	otherBase := "http://127.0.0.1:" + other.port()
	subst := strings.NewReplacer("$BASE", base, "$HOSTPORT", hostport, "$PORT", srv.port(),
		"$OTHER", otherBase, "$ALT", "http://127.0.0.2:"+srv.port())
	srv.subst, other.subst = subst, subst

	var refusedDo, refusedLoop []CookieRefusal
	newBrowser := func(refused *[]CookieRefusal) *Browser {
		ut := NewUserTransport(UserTransportOptions{IdleTimeout: -1})
		t.Cleanup(ut.CloseIdleConnections)
		return New(Options{Transport: ut, Timeout: 10 * time.Second, MaxBody: tc.maxBody,
			CookieRefused: func(r CookieRefusal) { *refused = append(*refused, r) }})
	}
	bd, bl := newBrowser(&refusedDo), newBrowser(&refusedLoop)
	bl.FullHeader(full)

	setup := tc.setup
	if state {
		setup = append([]Request{asDoGet("$BASE/start")}, setup...)
	}
	ctx := context.Background()
	for _, r := range setup {
		r.URL = subst.Replace(r.URL)
		for _, b := range []*Browser{bd, bl} {
			if _, _, err := b.Do(ctx, &r); err != nil {
				t.Fatalf("setup %s: %v", r.URL, err)
			}
		}
	}
	srv.take()
	other.take()
	refusedDo, refusedLoop = nil, nil

	var conns asDoConns
	defer conns.close()

	for i, step := range tc.steps {
		last := i == len(tc.steps)-1
		rd, rl := asDoCopy(step, subst), asDoCopy(step, subst)

		pd, _, errD := bd.Do(ctx, rd)
		resD := asDoResultOf(bd, pd, errD)
		reqsD, otherD := srv.take(), other.take()

		pl, errL := asDoLoop(bl, &conns, rl)
		if errors.Is(errL, errAsDoHarness) {
			t.Fatalf("step %d (%s %s): %v", i, rl.Method, rl.URL, errL)
		}
		resL := asDoResultOf(bl, pl, errL)
		reqsL, otherL := srv.take(), other.take()

		tag := fmt.Sprintf("step %d (%s %s)", i, rl.Method, rl.URL)
		if !slices.Equal(reqsD, reqsL) {
			t.Errorf("%s: requests differ:\nDo:   %q\nloop: %q", tag, reqsD, reqsL)
		}
		if !slices.Equal(otherD, otherL) {
			t.Errorf("%s: requests to the other origin differ:\nDo:   %q\nloop: %q", tag, otherD, otherL)
		}

		if last && tc.fail != "" {
			if errD == nil || errL == nil || !strings.Contains(errD.Error(), tc.fail) || !strings.Contains(errL.Error(), tc.fail) {
				t.Errorf("%s: want both to fail with %q:\nDo:   %v\nloop: %v", tag, tc.fail, errD, errL)
			}
			if resD.last != resL.last {
				t.Errorf("%s: Last after the failure:\nDo:   %q\nloop: %q", tag, resD.last, resL.last)
			}
		} else {
			if errD != nil || errL != nil {
				t.Fatalf("%s: errors:\nDo:   %v\nloop: %v", tag, errD, errL)
			}
			asDoComparePages(t, tag, resD, resL, full)
		}

		if !asDoEqualRefusals(refusedDo, refusedLoop) {
			t.Errorf("%s: refusals differ:\nDo:   %+v\nloop: %+v", tag, refusedDo, refusedLoop)
		}
		for _, r := range append(refusedDo, refusedLoop...) {
			if r.Time.IsZero() {
				t.Errorf("%s: refusal without a time: %+v", tag, r)
			}
		}
		// The cookies kept, seen from every URL requested and a few more,
		// on both servers (by the name of the case's host and by address).
		paths := []string{"/", "/app/x", "/c4", "/elsewhere", "/r0"}
		for _, r := range slices.Concat(reqsD, reqsL, otherD, otherL) {
			if rq, err := http.ReadRequest(bufio.NewReader(strings.NewReader(r))); err == nil {
				paths = append(paths, rq.RequestURI)
			}
		}
		for _, b := range []string{base, otherBase, "http://127.0.0.1:" + srv.port()} {
			for _, p := range paths {
				u, err := url.Parse(b + p)
				if err != nil {
					continue
				}
				if cd, cl := asDoCookies(bd, u), asDoCookies(bl, u); cd != cl {
					t.Errorf("%s: cookies for %s:\nDo:   %q\nloop: %q", tag, u, cd, cl)
				}
			}
		}
		if tc.check != nil && !(last && tc.fail != "") {
			tc.check(t, i, reqsD, resD, refusedDo)
		}
		refusedDo, refusedLoop = nil, nil
	}
}

// asDoCopy returns a copy of r with its URL's placeholders replaced, its
// header and body its own.
func asDoCopy(r Request, subst *strings.Replacer) *Request {
	r.URL = subst.Replace(r.URL)
	if r.Header != nil {
		h := make(http.Header, len(r.Header))
		for k, vs := range r.Header {
			if vs == nil {
				h[k] = nil
				continue
			}
			h[k] = append([]string{}, vs...)
		}
		r.Header = h
	}
	if r.Body != nil {
		r.Body = append([]byte{}, r.Body...)
	}
	return &r
}

func asDoComparePages(t *testing.T, tag string, d, l asDoResult, full bool) {
	t.Helper()
	if d.url != l.url {
		t.Errorf("%s: URL:\nDo:   %q\nloop: %q", tag, d.url, l.url)
	}
	if d.status != l.status {
		t.Errorf("%s: status: Do %d, loop %d", tag, d.status, l.status)
	}
	if !bytes.Equal(d.body, l.body) {
		t.Errorf("%s: body:\nDo:   %q\nloop: %q", tag, d.body, l.body)
	}
	if d.size != l.size {
		t.Errorf("%s: size: Do %d, loop %d", tag, d.size, l.size)
	}
	if !reflect.DeepEqual(d.redirects, l.redirects) {
		t.Errorf("%s: redirects:\nDo:   %#v\nloop: %#v", tag, d.redirects, l.redirects)
	}
	if d.last != l.last {
		t.Errorf("%s: Last:\nDo:   %q\nloop: %q", tag, d.last, l.last)
	}
	dl, dok := d.header["Location"]
	ll, lok := l.header["Location"]
	if dok != lok || d.header.Get("Location") != l.header.Get("Location") {
		t.Errorf("%s: Location:\nDo:   %q\nloop: %q", tag, dl, ll)
	}
	if full {
		dh, lh := d.header.Clone(), l.header.Clone()
		delete(dh, "Date")
		delete(lh, "Date")
		// A header of no field: nil or empty alike.
		if (len(dh) > 0 || len(lh) > 0) && !reflect.DeepEqual(dh, lh) {
			t.Errorf("%s: header:\nDo:   %q\nloop: %q", tag, dh, lh)
		}
	} else {
		for k := range l.header {
			if k != "Location" {
				t.Errorf("%s: loop's header has %q without FullHeader: %q", tag, k, l.header)
			}
		}
	}
}

func asDoEqualRefusals(a, b []CookieRefusal) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.Time, y.Time = time.Time{}, time.Time{}
		if x != y {
			return false
		}
	}
	return true
}

func asDoCookies(b *Browser, u *url.URL) string {
	var s []string
	for _, c := range b.Jar().Cookies(u) {
		s = append(s, fmt.Sprintf("%s=%s quoted=%v", c.Name, c.Value, c.Quoted))
	}
	return strings.Join(s, "; ")
}

// TestLoopBegin: what Begin refuses (nothing is then sent, End fails),
// and URL, the hop under way.
func TestLoopBegin(t *testing.T) {
	for _, tc := range []struct{ url, method string }{
		{url: "http://[::1", method: "GET"},
		{url: "http://127.0.0.1:8080/x", method: "BAD METHOD"},
		{url: "http://127.0.0.1:8080/x", method: "GET\n"},
		{url: "http://127.0.0.1:8080/x", method: "(GET)"},
	} {
		b := New(Options{Transport: NewUserTransport(UserTransportOptions{IdleTimeout: -1})})
		wire, err := b.Begin(&Request{Method: tc.method, URL: tc.url})
		if err == nil || wire != nil {
			t.Errorf("Begin(%s %q) = %q, %v", tc.method, tc.url, wire, err)
		}
		if u := b.URL(); u != nil {
			t.Errorf("URL after a failed Begin(%q): %v", tc.url, u)
		}
		// Do refuses the same methods and URLs.
		if _, _, derr := b.Do(context.Background(), &Request{Method: tc.method, URL: tc.url}); derr == nil {
			t.Errorf("Do(%s %q) did not fail", tc.method, tc.url)
		}
		if _, _, err := b.End(200); err == nil {
			t.Errorf("End after a failed Begin(%q): no error", tc.url)
		}
	}
	b := New(Options{})
	if b.URL() != nil {
		t.Errorf("URL of a new browser: %v", b.URL())
	}
	const u = "http://user@127.0.0.1:8080/a?b#c"
	wire, err := b.Begin(&Request{URL: u})
	if err != nil || !strings.HasPrefix(string(wire), "GET /a?b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n") {
		t.Fatalf("Begin(%q) = %q, %v", u, wire, err)
	}
	if got := b.URL(); got == nil || got.String() != u {
		t.Errorf("URL() = %v, want %s", got, u)
	}
	b.Abort()
	if b.URL() != nil || b.Last.URL != nil {
		t.Errorf("after Abort: URL %v, Last %v", b.URL(), b.Last.URL)
	}
	if _, _, err := b.End(200); err == nil {
		t.Error("End after Abort: no error")
	}
}
